"""Tests for squall.locale."""

from __future__ import annotations

import datetime
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

import squall.locale
from squall.locale import (
    LOCALE_NAMES,
    CSVLocale,
    GettextLocale,
    Locale,
    get,
    get_supported_locales,
    load_gettext_translations,
    load_translations,
    set_default_locale,
)

REAL_UTCNOW = squall.locale._utcnow
DATA = Path(__file__).parent / "data" / "locale"
CSV_DIR = DATA / "csv"
GETTEXT_DIR = DATA / "gettext"
UTC = datetime.UTC
NOW = datetime.datetime(2024, 3, 15, 14, 30, 0, tzinfo=UTC)  # a Friday


@pytest.fixture(autouse=True)
def isolated_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts from the module's initial state, and leaves it so."""
    for name in ("_translations", "_supported_locales", "_use_gettext", "_default_locale"):
        monkeypatch.setattr(squall.locale, name, getattr(squall.locale, name))
    monkeypatch.setattr(squall.locale, "_translations", {})
    monkeypatch.setattr(squall.locale, "_supported_locales", frozenset(["en_US"]))
    monkeypatch.setattr(squall.locale, "_use_gettext", False)
    monkeypatch.setattr(squall.locale, "_default_locale", "en_US")
    monkeypatch.setattr(Locale, "_cache", {})
    monkeypatch.setattr(squall.locale, "_browser_memo", {})
    monkeypatch.setattr(squall.locale, "_utcnow", lambda: NOW)
    yield


# --- choosing a locale --------------------------------------------------------


def test_default_locale_without_translations() -> None:
    locale = get()
    assert isinstance(locale, CSVLocale)
    assert (locale.code, locale.name, locale.rtl) == ("en_US", "English (US)", False)
    assert locale.translate("Sign out") == "Sign out"
    assert get_supported_locales() == frozenset(["en_US"])
    assert get("fr_FR", "", "de") is locale
    assert Locale.get("en_US") is locale


def test_get_closest_normalizes_and_falls_back_to_language() -> None:
    load_translations(str(CSV_DIR))
    assert get_supported_locales() == frozenset(["en_US", "es_ES", "pt"])
    assert get("ES-es").code == "es_ES"
    assert get("pt_BR").code == "pt"
    assert get("PT").code == "pt"
    assert get("zz-yy-xx", "es_es").code == "es_ES"
    assert get("fr", "pt-PT", "es_ES").code == "pt"


def _ranked_reference(header: Optional[str], default: str = "en_US") -> Locale:
    """What the browser locale must be: every entry ranked by q-value with a
    stable sort, then `get` over the codes (the first parameter alone may be
    the q-value; the code is what comes before the first ";")."""
    if header is None:
        return get(default)
    ranked: list[tuple[float, int, str]] = []
    for position, entry in enumerate(header.split(",")):
        pieces = entry.strip().split(";")
        q = 1.0
        if len(pieces) > 1 and pieces[1].strip().startswith("q="):
            try:
                q = float(pieces[1].strip()[2:])
            except ValueError:
                q = 0.0
        if q > 0:
            ranked.append((-q, position, pieces[0]))
    if not ranked:
        return get(default)
    return get(*[code for _, _, code in sorted(ranked)])


_LANGUAGE_CODES = ["en", "en-US", "EN_us", "es", "es-ES", "ES-mx", "pt", "pt-BR", "fr", "de-DE-1"]
_LANGUAGE_CODES += ["", " es", "es ", "xx", "*", "zh-Hant-TW", "ß-ss", "İ"]
_PARAMETERS = ["", ";q=0.5", ";q=0.9", "; q=0.9", ";q=1", ";q=0", ";q=-1", ";q=abc", ";q=1e-3"]
_PARAMETERS += [";q=nan", ";q=inf", ";level=1;q=0.3", ";q=0.3;level=1", ";q=0.5 ", ";Q=0.5", ";q="]
_ENTRIES = st.builds(
    lambda code, params, pad: pad + code + params + pad,
    st.sampled_from(_LANGUAGE_CODES),
    st.sampled_from(_PARAMETERS),
    st.sampled_from(["", " ", "\t"]),
)
_HEADERS = st.one_of(st.lists(_ENTRIES, max_size=6).map(",".join), st.text(max_size=30))
_SUPPORTED = st.sampled_from(
    [
        frozenset(["en_US"]),
        frozenset(["en_US", "es_ES", "pt"]),
        frozenset(["en_US", "es", "es_MX", "fr_FR", "de_DE", "ß_SS"]),
    ]
)


@given(header=_HEADERS, supported=_SUPPORTED, default=st.sampled_from(["en_US", "es", "zz"]))
def test_browser_locale_is_the_ranked_choice(
    header: str, supported: frozenset[str], default: str
) -> None:
    squall.locale._supported_locales = supported
    try:
        expected = _ranked_reference(header, default)
        # Twice: computed, then remembered.
        assert squall.locale._browser_locale(header, default) is expected
        assert squall.locale._browser_locale(header, default) is expected
        assert squall.locale._browser_locale_uncached(header, default) is expected
    finally:
        squall.locale._supported_locales = frozenset(["en_US"])


def test_browser_locale_examples() -> None:
    load_translations(str(CSV_DIR))
    choose = squall.locale._browser_locale
    assert choose(None).code == "en_US"
    assert choose(None, "es-es").code == "es_ES"
    assert choose("pt-BR,es;q=0.9").code == "pt"
    assert choose("fr, es-es;q=0.2, pt;q=0.1").code == "es_ES"
    # A language alone does not stand for one of its regions.
    assert choose("fr, es;q=0.2, pt;q=0.1").code == "pt"
    assert choose("es-ES;q=0.5, pt;q=0.5").code == "es_ES"
    assert choose("es-ES;q=0.5, pt;q=0.6").code == "pt"
    # Entries with no acceptable q-value: the default given; entries that
    # are acceptable but unsupported: the application's default locale.
    assert choose("es-ES;q=0, pt;q=x", "pt").code == "pt"
    assert choose("", "pt").code == "en_US"
    assert choose("fr", "pt").code == "en_US"
    # Only the first parameter is a q-value; the code is taken as written
    # up to the ";" (a space before it makes it unknown).
    assert choose("es-ES;level=1;q=0.1, pt;q=0.5").code == "es_ES"
    assert choose("es-ES ;q=0.9, pt;q=0.5").code == "pt"


def test_browser_locale_memo_follows_the_supported_locales() -> None:
    choose = squall.locale._browser_locale
    assert choose("es-ES,pt;q=0.5").code == "en_US"
    load_translations(str(CSV_DIR))
    assert choose("es-ES,pt;q=0.5").code == "es_ES"
    set_default_locale("fr_FR")
    assert choose("de").code == "fr_FR"
    # Replaced by hand, as tests do: noticed too.
    squall.locale._supported_locales = frozenset(["pt", "fr_FR"])
    assert choose("es-ES,pt;q=0.5").code == "pt"
    squall.locale._default_locale = "pt"
    assert choose("de").code == "pt"
    Locale._cache = {}
    fresh = choose("es-ES,pt;q=0.5")
    assert fresh is Locale._cache["pt"]


def test_browser_locale_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(squall.locale, "_BROWSER_MEMO_MAX", 4)
    memo = squall.locale._browser_memo
    for n in range(10):
        squall.locale._browser_locale(f"en;q=0.{n + 1}")
        assert 1 <= len(memo) <= 4
    long_header = "en-US," + "x;q=0.1," * 100
    assert squall.locale._browser_locale(long_header).code == "en_US"
    assert (long_header, "en_US") not in memo


def test_unsupported_code_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported locale 'xx_YY'"):
        Locale.get("xx_YY")


def test_set_default_locale() -> None:
    load_translations(str(CSV_DIR))
    set_default_locale("fr_FR")
    # The old default is no longer supported unless it has translations.
    assert get_supported_locales() == frozenset(["es_ES", "fr_FR", "pt"])
    locale = get("de_DE")
    assert (locale.code, locale.name) == ("fr_FR", "Français")
    assert get("en-us") is locale
    assert get("es").code == "fr_FR"


def test_unknown_code_has_unknown_name() -> None:
    set_default_locale("xx")
    assert get().name == "Unknown"


# --- CSV translations -------------------------------------------------------------


def test_csv_translations() -> None:
    load_translations(str(CSV_DIR))
    es = get("es_ES")
    assert isinstance(es, CSVLocale)
    assert es.translate("Sign out") == "Cerrar sesión"
    assert es.translate("spaced") == "padded"
    assert es.translate("lonely") == "lonely"
    assert es.translate("%(count)d photo", "%(count)d photos", 1) == "%(count)d foto"
    assert es.translate("%(count)d photo", "%(count)d photos", 3) == "%(count)d fotos"
    assert es.translate("%(count)d video", "%(count)d videos", 3) == "%(count)d videos"
    assert es.list(["a", "b", "c"]) == "a, b y c"
    assert es._months[0] == "enero" and es._weekdays[0] == "lunes"
    with pytest.raises(ValueError, match="count"):
        es.translate("a", "b")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
def test_csv_encoding_is_detected_from_bom(tmp_path: Path, encoding: str) -> None:
    text = (CSV_DIR / "es_ES.csv").read_text(encoding="utf-8")
    data = text.encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be"):
        # Without a BOM the file cannot be told from UTF-8; add the one the
        # writer would use.
        data = ("\ufeff" + text).encode(encoding)
    (tmp_path / "es_ES.csv").write_bytes(data)
    load_translations(str(tmp_path))
    assert get("es_ES").translate("Sign out") == "Cerrar sesión"


def test_csv_explicit_encoding(tmp_path: Path) -> None:
    (tmp_path / "fr.csv").write_bytes('"school","école"\n'.encode("latin-1"))
    load_translations(str(tmp_path), encoding="latin-1")
    assert get("fr").translate("school") == "école"


def test_csv_bad_files_and_rows_are_logged_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "Bad-Name.csv").write_text('"a","b"\n', encoding="utf-8")
    (tmp_path / "de.csv").write_text('"one","eins",plural\n"two","zwei",dual\n', encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="squall.general"):
        load_translations(str(tmp_path))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "Unrecognized locale 'Bad-Name'" in messages[0]
    assert "Unrecognized plural indicator 'dual'" in messages[1] and "line 2" in messages[1]
    assert get_supported_locales() == frozenset(["de", "en_US"])
    assert get("de").translate("two") == "two"


def test_csv_pgettext_ignores_context_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    load_translations(str(CSV_DIR))
    with caplog.at_level(logging.WARNING, logger="squall.general"):
        assert get("es_ES").pgettext("menu", "Sign out") == "Cerrar sesión"
        assert get("en_US").pgettext("menu", "Sign out") == "Sign out"
    # Only the locale that has translations complains.
    assert [r.getMessage() for r in caplog.records] == ["pgettext is not supported by CSVLocale"]


def test_loading_csv_after_gettext_switches_back() -> None:
    load_gettext_translations(str(GETTEXT_DIR), "squall_test")
    load_translations(str(CSV_DIR))
    Locale._cache.clear()
    assert isinstance(get("es_ES"), CSVLocale)
    assert "de_DE" not in get_supported_locales()


# --- gettext translations ---------------------------------------------------------


def test_gettext_translations() -> None:
    load_gettext_translations(str(GETTEXT_DIR), "squall_test")
    assert get_supported_locales() == frozenset(["de_DE", "en_US"])
    # A bare language does not select one of its regional variants.
    assert get("de").code == "en_US"
    de = get("de_DE")
    assert isinstance(de, GettextLocale)
    assert de.name == "Deutsch"
    assert de.translate("Sign out") == "Abmelden"
    assert de.translate("Unknown") == "Unknown"
    assert de.translate("%(n)d file", "%(n)d files", 1) == "%(n)d Datei"
    assert de.translate("%(n)d file", "%(n)d files", 2) == "%(n)d Dateien"
    assert de._months[0] == "Januar"
    assert de.format_date(datetime.datetime(2023, 1, 2, 8, 5), shorter=True) == "Januar 2, 2023"
    with pytest.raises(ValueError, match="count"):
        de.translate("a", "b")


def test_gettext_pgettext() -> None:
    load_gettext_translations(str(GETTEXT_DIR), "squall_test")
    de = get("de_DE")
    assert de.pgettext("door", "open") == "geöffnet"
    assert de.pgettext("verb", "open") == "öffnen"
    # No entry in this context: the message itself.
    assert de.pgettext("adjective", "open") == "open"
    assert de.pgettext("fruit", "apple", "apples", 1) == "Apfel"
    assert de.pgettext("fruit", "apple", "apples", 4) == "Äpfel"
    # Plural forms fall back to the context-free entry, then to the English.
    assert de.pgettext("disk", "%(n)d file", "%(n)d files", 4) == "%(n)d Dateien"
    assert de.pgettext("disk", "tree", "trees", 1) == "tree"
    assert de.pgettext("disk", "tree", "trees", 2) == "trees"
    with pytest.raises(ValueError, match="count"):
        de.pgettext("fruit", "apple", "apples")


def test_gettext_directories_without_the_domains_catalog_are_skipped_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A shared tree (like /usr/share/locale) holds locales of other domains:
    # as on Tornado, those are not candidates, so nothing is logged for them.
    shutil.copytree(GETTEXT_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "fr_FR").mkdir()
    (tmp_path / "it_IT" / "LC_MESSAGES").mkdir(parents=True)
    shutil.copy(
        GETTEXT_DIR / "de_DE" / "LC_MESSAGES" / "squall_test.mo",
        tmp_path / "it_IT" / "LC_MESSAGES" / "other_domain.mo",
    )
    (tmp_path / ".git").mkdir()
    (tmp_path / "notes.txt").write_text("not a locale", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="squall.general"):
        load_gettext_translations(str(tmp_path), "squall_test")
    assert caplog.records == []
    assert get_supported_locales() == frozenset(["de_DE", "en_US"])


def test_gettext_catalog_that_does_not_load_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.copytree(GETTEXT_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "fr_FR" / "LC_MESSAGES").mkdir(parents=True)
    (tmp_path / "fr_FR" / "LC_MESSAGES" / "squall_test.mo").write_bytes(b"not a catalog")
    with caplog.at_level(logging.ERROR, logger="squall.general"):
        load_gettext_translations(str(tmp_path), "squall_test")
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "Cannot load translation for 'fr_FR'"
    ]
    assert get_supported_locales() == frozenset(["de_DE", "en_US"])


def test_gettext_missing_directory_loads_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="squall.general"):
        load_gettext_translations(str(tmp_path / "absent"), "squall_test")
    assert "does not exist" in caplog.text
    assert get_supported_locales() == frozenset(["en_US"])
    assert get("de_DE").code == "en_US"


def test_base_locale_methods_are_abstract() -> None:
    with pytest.raises(NotImplementedError):
        Locale("en_US")

    class TranslateOnly(Locale):  # a subclass written against Tornado's Locale
        def translate(
            self, message: str, plural_message: Optional[str] = None, count: Optional[int] = None
        ) -> str:
            return message.upper()

    locale = TranslateOnly("en_US")
    assert locale.translate("m") == "M"
    with pytest.raises(NotImplementedError):
        locale.pgettext("c", "m")


# --- formatting -------------------------------------------------------------------------


def ago(**delta: float) -> datetime.datetime:
    return NOW - datetime.timedelta(**delta)


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        (ago(seconds=1), "1 second ago"),
        (ago(seconds=49), "49 seconds ago"),
        (ago(seconds=50), "1 minute ago"),
        (ago(minutes=49), "49 minutes ago"),
        (ago(minutes=50), "1 hour ago"),
        (ago(hours=23), "23 hours ago"),
        (ago(days=1), "yesterday at 2:30 pm"),
        (ago(days=1, hours=15), "Wednesday at 11:30 pm"),
        (ago(days=3), "Tuesday at 2:30 pm"),
        (ago(days=300), "May 20 at 2:30 pm"),
        (ago(days=400), "February 9, 2023 at 2:30 pm"),
        # A little in the future is clock skew; further is shown in full.
        (NOW + datetime.timedelta(seconds=30), "0 seconds ago"),
        (NOW + datetime.timedelta(days=1, seconds=30), "March 16, 2024 at 2:30 pm"),
        # Timestamps, naive (UTC) and aware datetimes.
        (NOW.timestamp() - 120, "2 minutes ago"),
        (int(NOW.timestamp()) - 7200, "2 hours ago"),
        (ago(minutes=3).replace(tzinfo=None), "3 minutes ago"),
        (
            ago(minutes=4).astimezone(datetime.timezone(datetime.timedelta(hours=5))),
            "4 minutes ago",
        ),
    ],
)
def test_format_date_relative(date: datetime.datetime | float, expected: str) -> None:
    assert get("en_US").format_date(date) == expected


def test_clock_is_utc() -> None:
    before = datetime.datetime.now(UTC)
    now = REAL_UTCNOW()
    assert now.tzinfo is UTC and before <= now <= datetime.datetime.now(UTC)


def test_format_date_options() -> None:
    en = get("en_US")
    assert en.format_date(ago(days=1), shorter=True) == "yesterday"
    assert en.format_date(ago(days=3), shorter=True) == "Tuesday"
    assert en.format_date(ago(days=300), shorter=True) == "May 20"
    assert en.format_date(ago(days=400), shorter=True) == "February 9, 2023"
    assert en.format_date(ago(hours=2), relative=False) == "12:30 pm"
    assert en.format_date(ago(days=1), relative=False) == "Thursday at 2:30 pm"
    assert en.format_date(ago(hours=1), full_format=True) == "March 15, 2024 at 1:30 pm"
    assert en.format_date(datetime.datetime(2013, 4, 28, 0, 5), full_format=True) == (
        "April 28, 2013 at 12:05 am"
    )
    # gmt_offset is minutes west of UTC.
    assert en.format_date(ago(hours=2), relative=False, gmt_offset=180) == "9:30 am"
    assert en.format_date(ago(days=2), gmt_offset=-600) == "Thursday at 12:30 am"


def test_format_date_clock_styles() -> None:
    set_default_locale("de_DE")
    assert get("de_DE").format_date(ago(hours=3), relative=False) == "11:30"
    set_default_locale("zh_CN")
    zh = get("zh_CN")
    assert zh.format_date(ago(hours=3), relative=False) == "上午11:30"
    assert zh.format_date(ago(hours=1), relative=False) == "下午1:30"


def test_format_date_shows_an_aware_datetime_in_its_own_zone() -> None:
    # As Tornado: the date's wall clock (less gmt_offset), not UTC's.
    en = get("en_US")
    paris = datetime.timezone(datetime.timedelta(hours=1))
    new_york = datetime.timezone(datetime.timedelta(hours=-5))
    date = datetime.datetime(2024, 3, 15, 10, 30, tzinfo=paris)  # 09:30 UTC
    assert en.format_date(date, relative=False) == "10:30 am"
    assert en.format_date(date, full_format=True) == "March 15, 2024 at 10:30 am"
    assert en.format_date(date, relative=False, gmt_offset=60) == "9:30 am"
    # The moment, not the wall clock, decides how long ago it was.
    assert en.format_date(date) == "5 hours ago"
    late = datetime.datetime(2024, 3, 14, 20, 0, tzinfo=new_york)  # 01:00 UTC on the 15th
    assert en.format_date(late, relative=False) == "8:00 pm"
    assert en.format_date(datetime.datetime(2024, 3, 1, 23, 0, tzinfo=new_york)) == (
        "March 1 at 11:00 pm"
    )


def test_format_day() -> None:
    en = get("en_US")
    date = datetime.datetime(2013, 4, 28, 18, 35)
    assert en.format_day(date) == "Sunday, April 28"
    assert en.format_day(date=date, dow=False) == "April 28"
    assert en.format_day(date, gmt_offset=1200) == "Saturday, April 27"


def test_list() -> None:
    en = get("en_US")
    assert en.list([]) == ""
    assert en.list(["A"]) == "A"
    assert en.list(["A", "B"]) == "A and B"
    assert en.list(["A", "B", "C"]) == "A, B and C"
    set_default_locale("fa_IR")
    assert get("fa").list(["A", "B", "C"]) == "A \u0648 B and C"


def test_friendly_number() -> None:
    assert get("en_US").friendly_number(1234567) == "1,234,567"
    assert get("en_US").friendly_number(999) == "999"
    set_default_locale("de_DE")
    assert get("de_DE").friendly_number(1234567) == "1234567"


@pytest.mark.parametrize(
    ("code", "rtl"), [("fa_IR", True), ("ar", True), ("he_IL", True), ("fr_FR", False)]
)
def test_right_to_left_languages(code: str, rtl: bool) -> None:
    set_default_locale(code)
    assert get().rtl is rtl


# --- names -----------------------------------------------------------------------------


def test_locale_names() -> None:
    assert LOCALE_NAMES["es_LA"]["name"] == "Español"
    assert LOCALE_NAMES["es_LA"]["name"].encode() == b"Espa\xc3\xb1ol"
    assert LOCALE_NAMES["de_DE"] == {"name_en": "German", "name": "Deutsch"}
    assert LOCALE_NAMES["ja_JP"]["name"] == "日本語"
    assert LOCALE_NAMES["pt_BR"]["name_en"] == "Portuguese (Brazil)"
    assert len(LOCALE_NAMES) >= 60
    for code, names in LOCALE_NAMES.items():
        assert set(names) == {"name_en", "name"}, code
        assert names["name"] and names["name_en"]


def test_public_names() -> None:
    assert set(squall.locale.__all__) >= {
        "get",
        "set_default_locale",
        "load_translations",
        "load_gettext_translations",
        "get_supported_locales",
        "Locale",
        "CSVLocale",
        "GettextLocale",
        "LOCALE_NAMES",
    }
