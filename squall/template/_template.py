"""Compiled templates and the loaders that find and cache them."""

from __future__ import annotations

import datetime
import enum
import linecache
import os.path
import posixpath
import threading
from collections.abc import Iterator, Mapping
from types import CodeType, FunctionType
from typing import Any, Optional, Union

from squall import escape
from squall.log import app_log
from squall.template._nodes import ENTRY_POINT, SIGNATURE, Block, CodeWriter, Extends
from squall.template._parser import parse
from squall.template._runtime import HELPERS, join
from squall.template._syntax import WHITESPACE_MODES, ParseError

__all__ = ["BaseLoader", "DictLoader", "Loader", "Template"]

_DEFAULT_AUTOESCAPE = "xhtml_escape"


class _Unset(enum.Enum):
    """Marks an argument the caller did not pass (None is a meaningful value)."""

    UNSET = enum.auto()


_UNSET = _Unset.UNSET

# Names every template can use, before the loader's namespace and the
# arguments of generate() are layered on top.
_BUILTINS: dict[str, Any] = {
    "escape": escape.xhtml_escape,
    "xhtml_escape": escape.xhtml_escape,
    "url_escape": escape.url_escape,
    "json_encode": escape.json_encode,
    "squeeze": escape.squeeze,
    "linkify": escape.linkify,
    "datetime": datetime,
    "_tt_utf8": escape.utf8,
    "_tt_string_types": (str, bytes),
}
# The function the generated code may escape with inline, when an autoescape
# name is bound to it at render time.
_XHTML_ESCAPE = escape.xhtml_escape
_HELPER_DEFAULTS = tuple(HELPERS.values())


class _SourceLoader:
    """Gives `linecache` (hence tracebacks) the source of generated code."""

    __slots__ = ("_code",)

    def __init__(self, code: str) -> None:
        self._code = code

    def get_source(self, name: str) -> str:
        return self._code


def _as_text(value: Union[str, bytes]) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _code_objects(code: CodeType) -> Iterator[CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _code_objects(const)


def _assigned_names(code: CodeType) -> set[str]:
    """Names the template's own code binds (``{% set %}``, loop targets...)."""
    names: set[str] = set()
    for each in _code_objects(code):
        names.update(each.co_varnames, each.co_cellvars)
    return names


def _numbered(code: str) -> str:
    lines = code.rstrip("\n").split("\n")
    width = len(str(len(lines)))
    return "\n".join(f"{n:>{width}}  {line}" for n, line in enumerate(lines, 1))


class Template:
    """A compiled template.

    The source is parsed and turned into Python code once, here; `generate`
    runs that code.

    Args:
        template_string: the template source (bytes are decoded as UTF-8).
        name: the template's name, used in error messages and tracebacks,
            and to resolve relative ``include``/``extends`` paths.
        loader: the loader that found the template; it provides templates
            named by ``include`` and ``extends``, a namespace, and defaults
            for ``autoescape`` and ``whitespace``.
        compress_whitespace: deprecated; True means ``whitespace="single"``,
            False means ``whitespace="all"``.
        autoescape: name of the function applied to each ``{{ }}`` result,
            or None for no escaping. Defaults to the loader's setting, or
            ``"xhtml_escape"`` without a loader.
        whitespace: ``"all"``, ``"single"`` or ``"oneline"`` (see
            `filter_whitespace`). Defaults to the loader's setting, else
            ``"single"`` for names ending in ``.html`` or ``.js`` and
            ``"all"`` for the rest.

    Raises:
        ParseError: if the source is not a valid template.
        SyntaxError: if code inside the template is not valid Python.
        ValueError: for an unknown whitespace mode, or both
            ``whitespace`` and ``compress_whitespace``.
    """

    def __init__(
        self,
        template_string: Union[str, bytes],
        name: str = "<string>",
        loader: Optional[BaseLoader] = None,
        compress_whitespace: Union[bool, _Unset] = _UNSET,
        autoescape: Union[str, None, _Unset] = _UNSET,
        whitespace: Optional[str] = None,
    ) -> None:
        self.name: str = _as_text(name)
        if compress_whitespace is not _UNSET:
            if whitespace is not None:
                raise ValueError("cannot set both whitespace and compress_whitespace")
            whitespace = "single" if compress_whitespace else "all"
        if whitespace is None:
            if loader is not None and loader.whitespace:
                whitespace = loader.whitespace
            elif self.name.endswith((".html", ".js")):
                whitespace = "single"
            else:
                whitespace = "all"
        if whitespace not in WHITESPACE_MODES:
            raise ValueError(
                f"invalid whitespace mode {whitespace!r}: expected one of {WHITESPACE_MODES}"
            )
        self.autoescape: Optional[str]
        if autoescape is not _UNSET:
            self.autoescape = autoescape
        elif loader is not None:
            self.autoescape = loader.autoescape
        else:
            self.autoescape = _DEFAULT_AUTOESCAPE
        self.namespace: dict[str, Any] = loader.namespace if loader is not None else {}
        self.loader = loader
        self.file = parse(self, _as_text(template_string), whitespace)
        self._filename = f"{self.name.replace('.', '_')}.generated.py"
        # Autoescape names bound to xhtml_escape before generate()'s
        # arguments are added; generate() checks them again with those.
        defaults = {**_BUILTINS, **self.namespace}
        fast = frozenset(name for name, value in defaults.items() if value is _XHTML_ESCAPE)
        self.code, self.compiled, self._escape_names = self._build(fast)
        # Code of the entry point by the answer, for each of _escape_names in
        # order, to "is it bound to xhtml_escape?".
        key = tuple(name in fast for name in self._escape_names)
        entry = self._entry(self.compiled)
        source = _SourceLoader(self.code)
        # With the source that tracebacks through that code must show.
        self._entry_points: dict[tuple[bool, ...], tuple[CodeType, _SourceLoader]] = {
            key: (entry, source)
        }
        # The usual cases, checked first at each render: no autoescape name,
        # or one, bound to xhtml_escape as it was here.
        self._usual_entry: Optional[CodeType] = None
        self._usual_name: Optional[str] = None
        if not key:
            self._usual_entry = entry
        elif key == (True,):
            self._usual_entry, self._usual_name = entry, self._escape_names[0]
        # The names every render starts from; copying a dict is cheaper
        # than building it (the loader's namespace is added at each render,
        # as it may change).
        self._globals = dict(_BUILTINS)
        self._globals["__name__"] = self.name.replace(".", "_")
        self._globals["__loader__"] = source

    def _lineage(self) -> list[Template]:
        """This template followed by the chain of templates it extends."""
        chain = [self]
        while True:
            current = chain[-1]
            extends = [node for node in current.file.nodes if isinstance(node, Extends)]
            if not extends:
                return chain
            if len(extends) > 1:
                raise ParseError("more than one {% extends %} block", current.name, extends[1].line)
            if self.loader is None:
                raise ParseError(
                    "{% extends %} block found, but no template loader",
                    current.name,
                    extends[0].line,
                )
            chain.append(self.loader.load(extends[0].name, current.name))

    def _assemble(self, fast_names: frozenset[str]) -> tuple[str, tuple[str, ...]]:
        """Write the Python source of this template's entry point.

        Returns:
            The source, and the autoescape names it uses (sorted).
        """
        lineage = self._lineage()
        blocks: dict[str, Block] = {}
        # From the root down, so the most derived definition of a block wins.
        for template in reversed(lineage):
            template.file.collect_blocks(self.loader, blocks)
        root = lineage[-1]
        out = CodeWriter(root, blocks, self.loader, fast_names)
        out.line(SIGNATURE, 0)
        with out.indented():
            out.line("_tt_buffer = []", 0)
            out.line("_tt_append = _tt_buffer.append", 0)
            root.file.write(out)
            # The pieces; generate() joins and encodes them.
            out.line("return _tt_buffer", 0)
        return out.source(), tuple(sorted(out.escape_names))

    def _compile(self, code: str) -> CodeType:
        try:
            # dont_inherit: this module's compiler flags are not the template's.
            return compile(code, self._filename, "exec", dont_inherit=True)
        except Exception:
            app_log.error("%s code:\n%s", self.name, _numbered(code))
            raise

    def _build(self, fast_names: frozenset[str]) -> tuple[str, CodeType, tuple[str, ...]]:
        """Source and compiled module of the code escaping ``fast_names`` inline."""
        code, names = self._assemble(fast_names)
        compiled = self._compile(code)
        # A name the template rebinds itself is not xhtml_escape throughout.
        rebound = fast_names & _assigned_names(compiled)
        if rebound:
            code, names = self._assemble(fast_names - rebound)
            compiled = self._compile(code)
        return code, compiled, names

    @staticmethod
    def _entry(compiled: CodeType) -> CodeType:
        for const in compiled.co_consts:
            if isinstance(const, CodeType) and const.co_name == ENTRY_POINT:
                return const
        raise AssertionError("generated code without its entry point")  # pragma: no cover

    def _entry_for(self, namespace: dict[str, Any]) -> CodeType:
        """The entry point's code for the escape functions bound in ``namespace``.

        Also puts that code's source in ``namespace`` for tracebacks.
        """
        names = self._escape_names
        key = tuple([namespace.get(name) is _XHTML_ESCAPE for name in names])
        found = self._entry_points.get(key)
        if found is None:
            # Rare: an autoescape name bound by generate()'s arguments or a
            # changed loader namespace. Another thread may build the same
            # code at once; either result is right.
            fast = frozenset(name for name, inline in zip(names, key, strict=True) if inline)
            code, compiled, _ = self._build(fast)
            found = self._entry_points[key] = (self._entry(compiled), _SourceLoader(code))
        namespace["__loader__"] = found[1]
        return found[0]

    def generate(self, **kwargs: Any) -> bytes:
        """Render the template with ``kwargs`` as variables.

        Templates see the escape helpers (``escape``, ``xhtml_escape``,
        ``url_escape``, ``json_encode``, ``squeeze``, ``linkify``), the
        ``datetime`` module, then the loader's namespace, then ``kwargs``.

        Returns:
            The rendered output, encoded as UTF-8.
        """
        return self._render(kwargs)

    def _render(self, variables: Mapping[str, Any]) -> bytes:
        """`generate` with the variables in a mapping (not copied into kwargs)."""
        namespace = self._namespace()
        namespace.update(variables)
        return self._execute(namespace)

    def _namespace(self) -> dict[str, Any]:
        """A new namespace of the names every render starts from (the helpers,
        then the loader's namespace), for the caller to add the variables to."""
        namespace = self._globals.copy()
        if self.namespace:
            namespace.update(self.namespace)
        return namespace

    def _execute(self, namespace: dict[str, Any]) -> bytes:
        """Runs the template in ``namespace`` (from `_namespace`, variables added)."""
        # The entry point's function made directly from its code: the same
        # as running the compiled module in the namespace, for less.
        code = self._usual_entry
        name = self._usual_name
        if code is None or (name is not None and namespace.get(name) is not _XHTML_ESCAPE):
            code = self._entry_for(namespace)
        execute = FunctionType(code, namespace, ENTRY_POINT, _HELPER_DEFAULTS)
        # A template compiled earlier under the same name may have left its
        # source in the line cache; tracebacks must show this one's.
        linecache.cache.pop(self._filename, None)
        return join(execute())


class BaseLoader:
    """Finds templates by name, compiles each once and keeps it.

    Args:
        autoescape: default ``autoescape`` of the templates loaded (a
            function name, or None for no escaping).
        namespace: extra names visible to every template loaded.
        whitespace: default whitespace mode of the templates loaded; None
            picks one from each template's file name.
    """

    def __init__(
        self,
        autoescape: Optional[str] = _DEFAULT_AUTOESCAPE,
        namespace: Optional[dict[str, Any]] = None,
        whitespace: Optional[str] = None,
    ) -> None:
        self.autoescape = autoescape
        self.namespace: dict[str, Any] = namespace or {}
        self.whitespace = whitespace
        self.templates: dict[str, Template] = {}
        # Re-entrant: compiling one template loads those it includes/extends.
        self.lock = threading.RLock()
        self._loading: list[str] = []

    def reset(self) -> None:
        """Forget every compiled template, so the next load reads the source again."""
        with self.lock:
            self.templates = {}

    def resolve_path(self, name: str, parent_path: Optional[str] = None) -> str:
        """Turn a name relative to ``parent_path`` into the loader's canonical name."""
        raise NotImplementedError()

    def load(self, name: str, parent_path: Optional[str] = None) -> Template:
        """Return the compiled template called ``name``.

        Args:
            name: the template's name, relative to ``parent_path`` if given.
            parent_path: the name of the template that refers to this one.

        Raises:
            ParseError: if the template is invalid or includes or extends
                itself, directly or not.
        """
        name = self.resolve_path(name, parent_path)
        # Found without the lock (reading a dict is atomic; reset() replaces
        # the dict): the lock is for compiling, once.
        template = self.templates.get(name)
        if template is not None:
            return template
        with self.lock:
            template = self.templates.get(name)
            if template is not None:
                return template
            if name in self._loading:
                cycle = " -> ".join([*self._loading[self._loading.index(name) :], name])
                raise ParseError(f"template includes or extends itself: {cycle}", parent_path)
            self._loading.append(name)
            try:
                template = self._create_template(name)
            finally:
                self._loading.pop()
            self.templates[name] = template
            return template

    def _create_template(self, name: str) -> Template:
        raise NotImplementedError()


def _is_relative_reference(name: str, parent_path: Optional[str]) -> bool:
    return bool(
        parent_path
        and not parent_path.startswith("<")
        and not parent_path.startswith("/")
        and not name.startswith("/")
    )


class Loader(BaseLoader):
    """Loads templates from files under a root directory.

    Args:
        root_directory: directory that template names are relative to.
        **kwargs: as for `BaseLoader`.
    """

    def __init__(self, root_directory: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = os.path.abspath(root_directory)

    def resolve_path(self, name: str, parent_path: Optional[str] = None) -> str:
        if parent_path is not None and _is_relative_reference(name, parent_path):
            parent_dir = os.path.dirname(os.path.abspath(os.path.join(self.root, parent_path)))
            candidate = os.path.abspath(os.path.join(parent_dir, name))
            # A reference leading out of the root keeps its name as written.
            if candidate.startswith(self.root + os.sep):
                name = candidate[len(self.root) + 1 :]
        return name

    def _create_template(self, name: str) -> Template:
        with open(os.path.join(self.root, name), "rb") as f:
            return Template(f.read(), name=name, loader=self)


class DictLoader(BaseLoader):
    """Loads templates from a dictionary of name to source.

    Args:
        dict: template sources by name (names use ``/`` as separator).
        **kwargs: as for `BaseLoader`.
    """

    def __init__(self, dict: Mapping[str, Union[str, bytes]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dict = dict

    def resolve_path(self, name: str, parent_path: Optional[str] = None) -> str:
        if parent_path is not None and _is_relative_reference(name, parent_path):
            name = posixpath.normpath(posixpath.join(posixpath.dirname(parent_path), name))
        return name

    def _create_template(self, name: str) -> Template:
        return Template(self.dict[name], name=name, loader=self)
