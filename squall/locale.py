"""Translations and locale-aware formatting of dates, lists and numbers.

Translations come either from CSV files (`load_translations`) or from
gettext ``.mo`` files (`load_gettext_translations`). `get` then picks the
best supported locale for a list of codes, such as those of a browser's
``Accept-Language`` header::

    squall.locale.load_translations("/path/to/csv")
    user_locale = squall.locale.get("es_MX", "es")
    print(user_locale.translate("Sign out"))

Text passed to `Locale.translate` and the format strings of this module are
looked up in the translations, so that they can be translated too.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import gettext
import os
import re
from collections.abc import Sequence
from typing import Any, Optional, Union

from squall.log import gen_log

__all__ = [
    "CONTEXT_SEPARATOR",
    "CSVLocale",
    "GettextLocale",
    "LOCALE_NAMES",
    "Locale",
    "get",
    "get_supported_locales",
    "load_gettext_translations",
    "load_translations",
    "set_default_locale",
]

# gettext's separator between a message's context and the message (msgctxt).
CONTEXT_SEPARATOR = "\x04"

_default_locale = "en_US"
# Locale code -> translations: for CSV, {plural kind: {message: translation}};
# for gettext, a gettext.NullTranslations.
_translations: dict[str, Any] = {}
_supported_locales: frozenset[str] = frozenset([_default_locale])
_use_gettext = False


def _names(english: str, native: str) -> dict[str, str]:
    return {"name_en": english, "name": native}


# Display names of the locales, in English and in the language itself.
LOCALE_NAMES: dict[str, dict[str, str]] = {
    "af_ZA": _names("Afrikaans", "Afrikaans"),
    "am_ET": _names("Amharic", "አማርኛ"),
    "ar_AR": _names("Arabic", "العربية"),
    "bg_BG": _names("Bulgarian", "Български"),
    "bn_IN": _names("Bengali", "বাংলা"),
    "bs_BA": _names("Bosnian", "Bosanski"),
    "ca_ES": _names("Catalan", "Català"),
    "cs_CZ": _names("Czech", "Čeština"),
    "cy_GB": _names("Welsh", "Cymraeg"),
    "da_DK": _names("Danish", "Dansk"),
    "de_DE": _names("German", "Deutsch"),
    "el_GR": _names("Greek", "Ελληνικά"),
    "en_GB": _names("English (UK)", "English (UK)"),
    "en_US": _names("English (US)", "English (US)"),
    "es_ES": _names("Spanish (Spain)", "Español (España)"),
    "es_LA": _names("Spanish", "Español"),
    "et_EE": _names("Estonian", "Eesti"),
    "eu_ES": _names("Basque", "Euskara"),
    "fa_IR": _names("Persian", "فارسی"),
    "fi_FI": _names("Finnish", "Suomi"),
    "fr_CA": _names("French (Canada)", "Français (Canada)"),
    "fr_FR": _names("French", "Français"),
    "ga_IE": _names("Irish", "Gaeilge"),
    "gl_ES": _names("Galician", "Galego"),
    "he_IL": _names("Hebrew", "עברית"),
    "hi_IN": _names("Hindi", "हिन्दी"),
    "hr_HR": _names("Croatian", "Hrvatski"),
    "hu_HU": _names("Hungarian", "Magyar"),
    "id_ID": _names("Indonesian", "Bahasa Indonesia"),
    "is_IS": _names("Icelandic", "Íslenska"),
    "it_IT": _names("Italian", "Italiano"),
    "ja_JP": _names("Japanese", "日本語"),
    "ko_KR": _names("Korean", "한국어"),
    "lt_LT": _names("Lithuanian", "Lietuvių"),
    "lv_LV": _names("Latvian", "Latviešu"),
    "mk_MK": _names("Macedonian", "Македонски"),
    "ml_IN": _names("Malayalam", "മലയാളം"),
    "ms_MY": _names("Malay", "Bahasa Melayu"),
    "nb_NO": _names("Norwegian (bokmål)", "Norsk (bokmål)"),
    "nl_NL": _names("Dutch", "Nederlands"),
    "nn_NO": _names("Norwegian (nynorsk)", "Norsk (nynorsk)"),
    "pa_IN": _names("Punjabi", "ਪੰਜਾਬੀ"),
    "pl_PL": _names("Polish", "Polski"),
    "pt_BR": _names("Portuguese (Brazil)", "Português (Brasil)"),
    "pt_PT": _names("Portuguese (Portugal)", "Português (Portugal)"),
    "ro_RO": _names("Romanian", "Română"),
    "ru_RU": _names("Russian", "Русский"),
    "sk_SK": _names("Slovak", "Slovenčina"),
    "sl_SI": _names("Slovenian", "Slovenščina"),
    "sq_AL": _names("Albanian", "Shqip"),
    "sr_RS": _names("Serbian", "Српски"),
    "sv_SE": _names("Swedish", "Svenska"),
    "sw_KE": _names("Swahili", "Kiswahili"),
    "ta_IN": _names("Tamil", "தமிழ்"),
    "te_IN": _names("Telugu", "తెలుగు"),
    "th_TH": _names("Thai", "ไทย"),
    "tl_PH": _names("Filipino", "Filipino"),
    "tr_TR": _names("Turkish", "Türkçe"),
    "uk_UA": _names("Ukrainian", "Українська"),
    "vi_VN": _names("Vietnamese", "Tiếng Việt"),
    "zh_CN": _names("Chinese (Simplified)", "中文(简体)"),
    "zh_TW": _names("Chinese (Traditional)", "中文(繁體)"),
}

_CSV_LOCALE_NAME = re.compile(r"[a-z]+(_[A-Z]+)?")
_PLURAL_KINDS = ("plural", "singular", "unknown")


def get(*locale_codes: str) -> Locale:
    """Return the closest supported locale for the given codes, best first.

    Codes may use ``-`` or ``_`` (``en-US``, ``en_US``) in any case; a code
    whose region is not supported falls back to its language alone. With no
    match the default locale (see `set_default_locale`) is returned.
    """
    return Locale.get_closest(*locale_codes)


def set_default_locale(code: str) -> None:
    """Set the locale used when no requested locale is supported.

    The default locale is always supported; it is also the language the
    application's own strings are written in, which need no translation.
    """
    global _default_locale, _supported_locales
    _default_locale = code
    _supported_locales = frozenset([*_translations, _default_locale])


def _csv_encoding(path: str) -> str:
    with open(path, "rb") as f:
        start = f.read(len(codecs.BOM_UTF16_LE))
    if start in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return "utf-16"
    # utf-8-sig also reads plain UTF-8, and drops a UTF-8 BOM if present.
    return "utf-8-sig"


def _read_csv_translations(path: str, encoding: str) -> dict[str, dict[str, str]]:
    table: dict[str, dict[str, str]] = {}
    with open(path, encoding=encoding, newline="") as f:
        for number, row in enumerate(csv.reader(f), 1):
            if len(row) < 2:
                continue
            cells = [cell.strip() for cell in row]
            kind = (cells[2] if len(cells) > 2 else "") or "unknown"
            if kind not in _PLURAL_KINDS:
                gen_log.error(
                    "Unrecognized plural indicator %r in %s line %d (expected one of %s)",
                    kind,
                    path,
                    number,
                    ", ".join(_PLURAL_KINDS),
                )
                continue
            table.setdefault(kind, {})[cells[0]] = cells[1]
    return table


def load_translations(directory: str, encoding: Optional[str] = None) -> None:
    """Load translations from the CSV files of a directory.

    Each file is named after its locale (``es_GT.csv``) and each row is
    ``"original","translation"``, with an optional third column ``plural``
    or ``singular`` for the two forms of a message that has both (see
    `Locale.translate`). Strings may contain ``%(name)s`` placeholders.

    Args:
        directory: the directory holding the ``LOCALE.csv`` files.
        encoding: encoding of the files; by default each file is read as
            UTF-16 if it starts with a UTF-16 byte order mark, else as UTF-8
            (with or without a BOM).
    """
    global _translations, _supported_locales, _use_gettext
    translations: dict[str, Any] = {}
    for filename in sorted(os.listdir(directory)):
        code, extension = os.path.splitext(filename)
        if extension != ".csv":
            continue
        path = os.path.join(directory, filename)
        if not _CSV_LOCALE_NAME.fullmatch(code):
            gen_log.error(
                "Unrecognized locale %r (path: %s): expected a name like es or es_GT", code, path
            )
            continue
        translations[code] = _read_csv_translations(path, encoding or _csv_encoding(path))
    _translations = translations
    _supported_locales = frozenset([*_translations, _default_locale])
    _use_gettext = False
    gen_log.debug("Supported locales: %s", sorted(_supported_locales))


def load_gettext_translations(directory: str, domain: str) -> None:
    """Load gettext translations from ``directory/LOCALE/LC_MESSAGES/domain.mo``.

    Subdirectories without that file are skipped; a catalog that does not
    load is logged and skipped.

    Args:
        directory: the directory holding one subdirectory per locale.
        domain: the gettext domain, the name of the ``.mo`` files.
    """
    global _translations, _supported_locales, _use_gettext
    translations: dict[str, Any] = {}
    try:
        entries = sorted(os.listdir(directory))
    except FileNotFoundError:
        # As Tornado: no translations (its lookup is a glob), not an error.
        gen_log.warning("No gettext translations: directory %s does not exist", directory)
        entries = []
    catalog = os.path.join("LC_MESSAGES", domain + ".mo")
    for code in entries:
        # Only the locales that have this domain's catalog: a shared tree
        # (such as /usr/share/locale) holds many other domains' locales.
        if code.startswith(".") or not os.path.isfile(os.path.join(directory, code, catalog)):
            continue
        try:
            translations[code] = gettext.translation(domain, directory, languages=[code])
        except Exception as e:
            gen_log.error("Cannot load translation for '%s': %s", code, e)
    _translations = translations
    _supported_locales = frozenset([*_translations, _default_locale])
    _use_gettext = True
    gen_log.debug("Supported locales: %s", sorted(_supported_locales))


def get_supported_locales() -> frozenset[str]:
    """Return the codes of all locales with translations, plus the default."""
    return _supported_locales


def _supported_code(code: str) -> Optional[str]:
    """The supported locale code that ``code`` asks for, or None.

    ``en-us`` and ``en_US`` both mean ``en_US``; a region that is not
    supported falls back to the language alone.
    """
    if not code:
        return None
    language, separator, region = code.replace("-", "_").partition("_")
    if separator:
        if "_" in region:
            return None
        code = language.lower() + "_" + region.upper()
    if code in _supported_locales:
        return code
    language = language.lower()
    return language if language in _supported_locales else None


def _browser_locale_uncached(header: str, default: str) -> Locale:
    # The locale `get` would return for the header's codes ranked by q-value
    # (best first, ties in the header's order), found in one pass without
    # sorting: the first supported code of that ranking is the supported
    # code with the highest q-value, the earliest of equals. Codes that
    # cannot win (q-value no higher than the best so far) are not looked up.
    best: Optional[str] = None
    best_score = 0.0
    ranked = False
    for entry in header.split(","):
        code, semicolon, params = entry.strip().partition(";")
        score = 1.0
        if semicolon:
            # Only the first parameter can be the q-value.
            q = params.partition(";")[0].strip()
            if q.startswith("q="):
                try:
                    score = float(q[2:])
                except ValueError:
                    score = 0.0
        # Also false for NaN: such an entry is dropped.
        if not score > 0.0:
            continue
        ranked = True
        if score > best_score:
            found = _supported_code(code)
            if found is not None:
                best, best_score = found, score
    if best is not None:
        return Locale.get(best)
    if ranked:
        return Locale.get(_default_locale)
    return Locale.get_closest(default)


# Accept-Language header value and default -> locale: real clients send few
# distinct headers, so nearly every request is answered by a lookup. Valid
# while the supported locales, the default locale and the locale cache are
# the objects it was filled for (tests and applications replace them).
_BROWSER_MEMO_MAX = 64
_BROWSER_MEMO_HEADER_MAX = 256
_browser_memo: dict[tuple[str, str], Locale] = {}
_browser_memo_for: tuple[frozenset[str], str, dict[str, Locale]] = (frozenset(), "", {})


def _browser_locale(header: Optional[str], default: str = "en_US") -> Locale:
    """The locale for an ``Accept-Language`` header value (q-values honoured).

    Codes are tried best q-value first (ties in the header's order; an entry
    with q=0 or an unreadable q-value is left out) and the first supported
    one wins, as `get` does; if none is, the default locale. Without the
    header, or with no acceptable entry, ``default``.
    """
    if header is None:
        return Locale.get_closest(default)
    global _browser_memo_for
    state = _browser_memo_for
    memo = _browser_memo
    cache = Locale._cache
    if (
        state[0] is not _supported_locales
        or state[1] is not _default_locale
        or state[2] is not cache
    ):
        memo.clear()
        _browser_memo_for = (_supported_locales, _default_locale, cache)
    key = (header, default)
    found = memo.get(key)
    if found is None:
        found = _browser_locale_uncached(header, default)
        if len(header) <= _BROWSER_MEMO_HEADER_MAX:
            if len(memo) >= _BROWSER_MEMO_MAX:
                memo.clear()
            memo[key] = found
    return found


_RTL_LANGUAGES = ("fa", "ar", "he")


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Locale:
    """A locale: translations and conventions for one language (and region).

    Obtain instances with `get` or `Locale.get`, not by constructing them.

    Attributes:
        code: the locale code, such as ``en_US``.
        name: the language's name in that language, or ``"Unknown"``.
        rtl: whether the language is written right to left.
    """

    _cache: dict[str, Locale] = {}

    @classmethod
    def get_closest(cls, *locale_codes: str) -> Locale:
        """Return the first supported locale among ``locale_codes``.

        See `get` for how codes are matched.
        """
        for code in locale_codes:
            found = _supported_code(code)
            if found is not None:
                return cls.get(found)
        return cls.get(_default_locale)

    @classmethod
    def get(cls, code: str) -> Locale:
        """Return the locale for a supported code, creating it on first use.

        Raises:
            ValueError: if ``code`` is not a supported locale.
        """
        cache = cls._cache
        locale = cache.get(code)
        if locale is None:
            if code not in _supported_locales:
                raise ValueError(
                    f"unsupported locale {code!r}; supported: {sorted(_supported_locales)}"
                )
            translations = _translations.get(code)
            if translations is None:
                locale = CSVLocale(code, {})
            elif _use_gettext:
                locale = GettextLocale(code, translations)
            else:
                locale = CSVLocale(code, translations)
            cache[code] = locale
        return locale

    def __init__(self, code: str) -> None:
        self.code = code
        self.name: str = LOCALE_NAMES.get(code, {}).get("name", "Unknown")
        self.rtl = code.startswith(_RTL_LANGUAGES)
        _ = self.translate
        self._months = [
            _("January"),
            _("February"),
            _("March"),
            _("April"),
            _("May"),
            _("June"),
            _("July"),
            _("August"),
            _("September"),
            _("October"),
            _("November"),
            _("December"),
        ]
        self._weekdays = [
            _("Monday"),
            _("Tuesday"),
            _("Wednesday"),
            _("Thursday"),
            _("Friday"),
            _("Saturday"),
            _("Sunday"),
        ]

    def translate(
        self, message: str, plural_message: Optional[str] = None, count: Optional[int] = None
    ) -> str:
        """Return the translation of ``message``.

        If ``plural_message`` is given, ``count`` must be too: the singular
        form is used when ``count`` is 1, the plural form otherwise.
        """
        return self._lookup("translate", None, message, plural_message, count)

    def pgettext(
        self,
        context: str,
        message: str,
        plural_message: Optional[str] = None,
        count: Optional[int] = None,
    ) -> str:
        """Like `translate`, with a context telling apart identical messages."""
        return self._lookup("pgettext", context, message, plural_message, count)

    def _lookup(
        self, caller: str, context: Optional[str], message: str, plural: Optional[str], count: Any
    ) -> str:
        """The translation `translate` (no ``context``) and `pgettext` return.

        Subclasses look the message up; this checks the arguments.
        """
        if plural is not None and count is None:
            raise ValueError(f"{caller}() needs a count when plural_message is given")
        return self._find(context, message, plural, count)

    def _find(self, context: Optional[str], message: str, plural: Optional[str], count: int) -> str:
        """The translation of ``message`` (``count`` is ignored without ``plural``)."""
        raise NotImplementedError()

    def format_date(
        self,
        date: Union[int, float, datetime.datetime],
        gmt_offset: int = 0,
        relative: bool = True,
        shorter: bool = False,
        full_format: bool = False,
    ) -> str:
        """Format a moment for people, like "3 minutes ago" or "June 2 at 4:05 pm".

        Args:
            date: a POSIX timestamp or a datetime. A naive datetime is taken
                as UTC; an aware one is shown in its own time zone (its
                wall clock, less ``gmt_offset``), as Tornado shows it.
            gmt_offset: minutes to subtract from the date's time to get the
                viewer's local time (positive west of Greenwich).
            relative: say "2 hours ago" or "yesterday" for recent moments.
            shorter: leave out the time of day when the date is shown.
            full_format: always show the full date and time.
        """
        if isinstance(date, (int, float)):
            date = datetime.datetime.fromtimestamp(date, datetime.UTC)
        elif date.tzinfo is None:
            date = date.replace(tzinfo=datetime.UTC)
        now = _utcnow()
        if date > now:
            # A moment in the near future is most likely clock skew.
            if relative and (date - now).total_seconds() < 60:
                date = now
            else:
                full_format = True
        offset = datetime.timedelta(minutes=gmt_offset)
        local_date = date - offset
        local_yesterday = now - offset - datetime.timedelta(hours=24)
        age = now - date
        days, seconds = age.days, age.seconds
        _ = self.translate

        if full_format:
            pattern = None
        elif relative and days == 0:
            return self._ago(seconds)
        elif days == 0:
            pattern = _("%(time)s")
        elif days == 1 and relative and local_date.day == local_yesterday.day:
            pattern = _("yesterday") if shorter else _("yesterday at %(time)s")
        elif days < 5:
            pattern = _("%(weekday)s") if shorter else _("%(weekday)s at %(time)s")
        elif days < 334:  # about 11 months: "May 3" could otherwise mean last May
            pattern = (
                _("%(month_name)s %(day)s") if shorter else _("%(month_name)s %(day)s at %(time)s")
            )
        else:
            pattern = None
        if pattern is None:
            pattern = (
                _("%(month_name)s %(day)s, %(year)s")
                if shorter
                else _("%(month_name)s %(day)s, %(year)s at %(time)s")
            )
        return pattern % {
            "month_name": self._months[local_date.month - 1],
            "weekday": self._weekdays[local_date.weekday()],
            "day": str(local_date.day),
            "year": str(local_date.year),
            "time": self._time_of_day(local_date),
        }

    def _ago(self, seconds: int) -> str:
        _ = self.translate
        if seconds < 50:
            return _("1 second ago", "%(seconds)d seconds ago", seconds) % {"seconds": seconds}
        if seconds < 50 * 60:
            minutes = round(seconds / 60)
            return _("1 minute ago", "%(minutes)d minutes ago", minutes) % {"minutes": minutes}
        hours = round(seconds / 3600)
        return _("1 hour ago", "%(hours)d hours ago", hours) % {"hours": hours}

    def _time_of_day(self, moment: datetime.datetime) -> str:
        hour12 = moment.hour % 12 or 12
        afternoon = moment.hour >= 12
        if self.code == "zh_CN":
            return f"{'下午' if afternoon else '上午'}{hour12}:{moment.minute:02d}"
        if self.code in ("en", "en_US"):
            return f"{hour12}:{moment.minute:02d} {'pm' if afternoon else 'am'}"
        return f"{moment.hour}:{moment.minute:02d}"

    def format_day(self, date: datetime.datetime, gmt_offset: int = 0, dow: bool = True) -> str:
        """Format a day, like "Monday, January 22" (or "January 22" without ``dow``).

        Args:
            date: the moment, in UTC.
            gmt_offset: minutes to subtract to get the viewer's local time.
            dow: include the day of the week.
        """
        local_date = date - datetime.timedelta(minutes=gmt_offset)
        _ = self.translate
        pattern = _("%(weekday)s, %(month_name)s %(day)s") if dow else _("%(month_name)s %(day)s")
        return pattern % {
            "month_name": self._months[local_date.month - 1],
            "weekday": self._weekdays[local_date.weekday()],
            "day": str(local_date.day),
        }

    def list(self, parts: Sequence[str]) -> str:
        """Join items as a sentence would: "A, B and C"."""
        if not parts:
            return ""
        if len(parts) == 1:
            return parts[0]
        comma = " \u0648 " if self.code.startswith("fa") else ", "
        return self.translate("%(commas)s and %(last)s") % {
            "commas": comma.join(parts[:-1]),
            "last": parts[-1],
        }

    def friendly_number(self, value: int) -> str:
        """Format an integer with thousands separators, for locales that use commas."""
        if self.code not in ("en", "en_US"):
            return str(value)
        return f"{value:,}"


class CSVLocale(Locale):
    """A locale whose translations were loaded by `load_translations`."""

    def __init__(self, code: str, translations: dict[str, dict[str, str]]) -> None:
        self.translations = translations
        super().__init__(code)

    def _find(self, context: Optional[str], message: str, plural: Optional[str], count: int) -> str:
        # CSV translations have no contexts: pgettext translates without one.
        if context is not None and self.translations:
            gen_log.warning("pgettext is not supported by CSVLocale")
        if plural is None:
            table = self.translations.get("unknown", {})
        elif count != 1:
            message = plural
            table = self.translations.get("plural", {})
        else:
            table = self.translations.get("singular", {})
        return table.get(message, message)


class GettextLocale(Locale):
    """A locale whose translations were loaded by `load_gettext_translations`."""

    def __init__(self, code: str, translations: gettext.NullTranslations) -> None:
        self.ngettext = translations.ngettext
        self.gettext = translations.gettext
        # The base initializer translates month names, so these come first.
        super().__init__(code)

    def _find(self, context: Optional[str], message: str, plural: Optional[str], count: int) -> str:
        if context is None:
            if plural is None:
                return self.gettext(message)
            return self.ngettext(message, plural, count)
        # gettext's msgctxt, falling back to the message without context when
        # that context has no translation (gettext returns its argument
        # unchanged when it has no entry).
        prefix = f"{context}{CONTEXT_SEPARATOR}"
        if plural is None:
            result = self.gettext(prefix + message)
            return message if CONTEXT_SEPARATOR in result else result
        result = self.ngettext(prefix + message, prefix + plural, count)
        if CONTEXT_SEPARATOR in result:
            return self.ngettext(message, plural, count)
        return result
