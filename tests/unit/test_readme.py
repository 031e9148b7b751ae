"""The README and the docs site (docs/) against the code: every command, flag, configuration key, make target,
path, link and diagram node they name must be real, and no link may leave the repository except for public
documentation.

Each check is a function from Markdown text to a list of problems, so the same functions are run on every document
(no problems) and on a deliberately wrong snippet (each mistake found). A check that reads one section reads it on the
page that holds it: the command reference on docs/commands.md, the configuration reference on docs/configuration.md,
the architecture diagram in README.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shlex
import types
import typing
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pydantic import BaseModel

from batch_pipeline.config import app as config_module
from batch_pipeline_local.cli.main import build_parser

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
# The pages that hold the sections some checks read.
COMMAND_REFERENCE = (DOCS / "commands.md", "Command reference")
CONFIGURATION_REFERENCE = (DOCS / "configuration.md", "Reference")
DIAGRAM_PAGE = README
# The only hosts a link may leave the repository for: public documentation.
PUBLIC_DOCUMENTATION_HOSTS = {
    "docs.aws.amazon.com": "AWS documentation (user guides, API and service references)",
    "aws.amazon.com": "AWS's public product and pricing pages (the price sources of the model catalog)",
}
# Generated or installed, never named as something the repository holds.
GENERATED = {".venv", "node_modules", "cdk.out", ".cache", ".git", "llm_batch_pipeline.egg-info", "demo-out", "build"}
SOURCE_DIRS = ("lambdas", "local", "stacks", "examples", "bench", "tests")


# ---------------------------------------------------------------- reading markdown


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each ``` block."""
    return [(m["lang"], m["body"]) for m in re.finditer(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```", text, re.M | re.S)]


def prose(text: str) -> str:
    return re.sub(r"^```[\w-]*\n.*?^```", "", text, flags=re.M | re.S)


def inline_spans(text: str) -> list[str]:
    """Inline code; `\\|` (a pipe escaped inside a table) reads as `|`."""
    return [span.replace("\\|", "|") for span in re.findall(r"`([^`\n]+)`", prose(text))]


SHELL_BLOCKS = ("bash", "console", "sh", "shell")


def code_lines(text: str, languages: tuple[str, ...] | None = None) -> list[str]:
    """Lines of code the text shows: fenced lines (comments cut; only `languages` if given) and inline spans."""
    lines = []
    for lang, body in fenced_blocks(text):
        if lang in ("mermaid", "json", "python") or (languages is not None and lang not in languages):
            continue
        lines += [re.sub(r"\s#\s.*$", "", line) for line in body.splitlines()]
    return lines + inline_spans(text)


def section(text: str, heading: str) -> str:
    """The body of a `# heading` (a page title) or `## heading` section, up to the next `# ` or `## `; no code."""
    match = re.search(rf"^#{{1,2}} {re.escape(heading)}\n(.*?)(?=^#{{1,2}} |\Z)", prose(text), re.M | re.S)
    return match.group(1) if match else ""


def page_section(where: tuple[Path, str]) -> str:
    path, heading = where
    return section(path.read_text(encoding="utf-8"), heading)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading (how README.md and docs/*.md read on GitHub)."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def site_slug(heading: str) -> str:
    """MkDocs' anchor for a heading (Python-Markdown's toc extension, as the built site has it)."""
    from markdown.extensions.toc import slugify

    return slugify(re.sub(r"[`*]", "", heading.strip()), "-")


def anchors(text: str, *, site: bool) -> set[str]:
    """The anchors a page's headings make: on GitHub, and also in the built site for a docs/ page."""
    headings = re.findall(r"^#+ (.+)$", prose(text), re.M)
    github = {slug(h) for h in headings}
    return github & {site_slug(h) for h in headings} if site else github


# ---------------------------------------------------------------- (a) the CLI


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def _invocations(text: str) -> list[list[str]]:
    """Token lists following each `batch-pipeline` the text shows with something after it."""
    found = []
    for line in code_lines(text, SHELL_BLOCKS):
        for match in re.finditer(r"(?<![\w-])batch-pipeline(?![\w.-])[ \t]+([^`]*)", line):
            rest = match.group(1)
            # A shell pipe or redirection ends the command; inside [...] a `|` separates alternatives.
            rest = re.sub(r"\[([^\]]*)\]", lambda m: " " + m.group(1).replace("|", " ") + " ", rest)
            rest = re.split(r"\s(?:\||>|&&|;)\s", rest)[0]
            try:
                tokens = shlex.split(rest)
            except ValueError:
                tokens = rest.split()
            if tokens:
                found.append(tokens)
    return found


def cli_problems(text: str, parser: argparse.ArgumentParser) -> tuple[list[str], dict[tuple[str, ...], set[str]]]:
    """Problems, and for each (sub)command path the flags the text names for it."""
    problems: list[str] = []
    named: dict[tuple[str, ...], set[str]] = {}
    every_option = _options(parser) | {o for p in _walk(parser).values() for o in _options(p)}
    for tokens in _invocations(text):
        current, path = parser, ()
        rest = list(tokens)
        while rest and (subs := _subcommands(current)):
            word = rest[0]
            if word.startswith("-"):
                break
            rest.pop(0)
            if word.startswith("<"):
                current = None
                break
            if word not in subs:
                problems.append(
                    f"`batch-pipeline {' '.join(path + (word,))}`: no such command (known: {', '.join(sorted(subs))})"
                )
                current = None
                break
            current, path = subs[word], path + (word,)
        named.setdefault(path, set())
        for token in rest:
            if not token.startswith("--"):
                continue
            flag = token.split("=", 1)[0]
            named[path].add(flag)
            if current is not None and flag not in _options(current):
                problems.append(f"`batch-pipeline {' '.join(path)}` has no option {flag}")
            elif current is None and flag not in every_option:
                problems.append(f"{flag}: no command has this option")
    # Flags named on their own in prose must belong to some command.
    for span in inline_spans(text):
        if re.fullmatch(r"--[a-z][\w-]*", span) and span not in every_option:
            problems.append(f"`{span}`: no command has this option")
    return problems, named


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    found = {path: parser}
    for name, sub in _subcommands(parser).items():
        found.update(_walk(sub, path + (name,)))
    return found


def cli_coverage_problems(text: str, parser: argparse.ArgumentParser) -> list[str]:
    """Every command and every option of it is named somewhere in the docs."""
    _, named = cli_problems(text, parser)
    problems = []
    for path, sub in _walk(parser).items():
        if not path:
            continue
        if path not in named and not _subcommands(sub):
            problems.append(f"`batch-pipeline {' '.join(path)}` is not in the docs")
            continue
        if _subcommands(sub):
            continue
        for option in sorted(o for o in _options(sub) if o.startswith("--") and o != "--help"):
            if option not in named.get(path, set()):
                problems.append(f"`batch-pipeline {' '.join(path)} {option}` is not in the docs")
    return problems


def usage(parser: argparse.ArgumentParser) -> str:
    """A command's usage line as the command reference shows it: one line, without [-h]."""
    return " ".join(parser.format_usage().split()).removeprefix("usage: ").replace("[-h] ", "")


def usage_problems(reference: str, parser: argparse.ArgumentParser) -> list[str]:
    """The command reference (the text of its section) shows every command exactly as its --help usage line does."""
    rows = re.findall(r"^\| `(batch-pipeline [^`]*(?:\\\|[^`]*)*)` \|", reference, re.M)
    shown = {row.replace("\\|", "|") for row in rows}
    problems = []
    for path, sub in _walk(parser).items():
        if not path or _subcommands(sub):
            continue
        if usage(sub) not in shown:
            problems.append(f"command reference: `{usage(sub)}` is missing or differs from its row")
    return problems


# ---------------------------------------------------------------- (b) configuration keys

_LEAF = "leaf"
_OPEN = "open"  # free-form mapping: any key below it is fine


def _unwrap(annotation):
    """(kind, payload): ("models", [BaseModel, ...]) | ("map", value annotation) | (_OPEN, None) | (_LEAF, None)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        kinds = [_unwrap(a) for a in typing.get_args(annotation) if a is not type(None)]
        models = [m for kind, payload in kinds if kind == "models" for m in payload]
        if models:
            return "models", models
        return kinds[0] if len(kinds) == 1 else (_LEAF, None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "models", [annotation]
    if origin is dict:
        value = typing.get_args(annotation)[1]
        kind, _ = _unwrap(value)
        return ("map", value) if kind in ("models", "map") else (_OPEN, None)
    if annotation is typing.Any:
        return _OPEN, None
    return _LEAF, None


def _all_models(root: type[BaseModel] = config_module.AppConfig) -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []

    def visit(annotation) -> None:
        kind, payload = _unwrap(annotation)
        if kind == "models":
            for model in payload:
                if model not in seen:
                    seen.append(model)
                    for field in model.model_fields.values():
                        visit(field.annotation)
        elif kind == "map":
            visit(payload)

    visit(root)
    return seen


def resolve(segments: list[str], models: list[type[BaseModel]]) -> list | None:
    """The FieldInfos a dotted path ends on (several for a union), [] for a free-form key; None if it does not exist."""
    fields: list = []
    nodes: list = [("models", models)]
    for segment in segments:
        next_nodes, fields = [], []
        for kind, payload in nodes:
            if kind == _OPEN:
                return []
            if kind == "map":
                next_nodes.append(_unwrap(payload))
            elif kind == "models":
                for model in payload:
                    if segment in model.model_fields:
                        field = model.model_fields[segment]
                        fields.append((model, field))
                        next_nodes.append(_unwrap(field.annotation))
        if not next_nodes:
            return None
        nodes = next_nodes
    return fields


def _is_placeholder(segment: str) -> bool:
    return segment.startswith("<") and segment.endswith(">")


def _split_path(path: str) -> list[str]:
    return path.removeprefix(f"{config_module.CONTEXT_KEY}.").split(".")


def _resolve_anywhere(segments: list[str]) -> list | None:
    """A path from the root, or relative to any model that has its first segment (e.g. `bedrock.inference_params`)."""
    found = resolve(segments, [config_module.AppConfig])
    if found is not None:
        return found
    for model in _all_models():
        if segments[0] in model.model_fields and (found := resolve(segments, [model])) is not None:
            return found
    return None


def _field_names() -> set[str]:
    return {name for model in _all_models() for name in model.model_fields}


@functools.cache
def _source_words() -> frozenset[str]:
    """Identifiers and words of the code (Python files, cdk.json, the Makefile; not data files)."""
    words: set[str] = set()
    files = [
        REPO / "cdk.json",
        REPO / "app.py",
        REPO / "Makefile",
        *(p for d in SOURCE_DIRS for p in (REPO / d).rglob("*.py")),
    ]
    for file in files:
        if file.resolve() == Path(__file__).resolve():
            continue  # the deliberately wrong snippet below must not count
        words.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", file.read_text(encoding="utf-8")))
    return frozenset(words)


_DOTTED = re.compile(r"(?:batch-pipeline\.)?[a-z_<][\w<>-]*(?:\.[a-z_<][\w<>-]*)+")


def _default_matches(cell: str, candidates: list) -> bool:
    cell = cell.strip()
    if cell == "required":
        return any(field.is_required() for _, field in candidates)
    match = re.fullmatch(r"`([^`]+)`", cell)
    if not match:
        return True  # prose, not a default
    try:
        value = json.loads(match.group(1))
    except ValueError:
        value = match.group(1)
    return any(not field.is_required() and field.default == value for _, field in candidates)


def config_problems(text: str) -> list[str]:
    """Configuration keys named anywhere: dotted paths must resolve, bare snake_case names must be keys or code."""
    problems = []
    fields = _field_names()
    # Dotted paths anywhere, e.g. `pipelines.<name>.bedrock.timeout_hours` or `bedrock.inference_params`.
    for span in inline_spans(text):
        span = span.split("=", 1)[0]
        if not _DOTTED.fullmatch(span):
            continue
        segments = _split_path(span)
        rooted = span.startswith(f"{config_module.CONTEXT_KEY}.") or segments[0] in config_module.AppConfig.model_fields
        looks_like_keys = "_" in span or any(_is_placeholder(s) for s in segments)
        if segments[0] not in fields or not (rooted or looks_like_keys):
            continue  # not a configuration path (a module, a file name, a host name, a model id)
        if _resolve_anywhere(segments) is None:
            problems.append(f"`{span}`: no such configuration key")
    # Bare snake_case names: a configuration field, or a name the code uses.
    for span in inline_spans(text):
        if re.fullmatch(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+", span) and span not in fields and span not in _source_words():
            problems.append(f"`{span}`: neither a configuration key nor a name in the code")
    return problems


def reference_problems(reference: str) -> list[str]:
    """The configuration reference (the text of its section): each table row is a key with its real default."""
    problems = []
    # ### `<path>` headings (or ####), then | key | default | meaning | rows.
    for match in re.finditer(r"^#{3,4} `([^`]+)`(?P<qualifier>[^\n]*)\n(?P<body>.*?)(?=^#|\Z)", reference, re.M | re.S):
        heading = match.group(1)
        prefix = [] if heading == config_module.CONTEXT_KEY else _split_path(heading)
        qualifier = match["qualifier"].strip(" ()").lower()
        table = re.match(r"\s*((?:^\|[^\n]*\n)+)", match["body"], re.M)
        for row in re.findall(r"^\| `([^`]+)` \|([^|]*)\|", table.group(1) if table else "", re.M):
            key, default = row
            path = prefix + [key]
            candidates = resolve(path, [config_module.AppConfig])
            if candidates is None:
                problems.append(f"`{'.'.join(path)}` (table {heading}): no such configuration key")
                continue
            if qualifier:
                candidates = [(m, f) for m, f in candidates if qualifier in m.__name__.lower()] or candidates
            if candidates and not _default_matches(default, candidates):
                actual = [("required" if f.is_required() else json.dumps(f.default)) for _, f in candidates]
                problems.append(
                    f"`{'.'.join(path)}`: the docs say default {default.strip()}, the model says {', '.join(actual)}"
                )
    return problems


def config_coverage_problems(reference: str) -> list[str]:
    """Every field of the configuration model is in the configuration reference (the text of its section)."""
    documented = set(re.findall(r"^\| `([^`]+)` \|", reference, re.M))
    documented |= {segment for span in inline_spans(reference) for segment in span.split(".")}
    return [
        f"configuration key `{name}` ({model.__name__}) is not in the configuration reference"
        for model in _all_models()
        for name in model.model_fields
        if name not in documented
    ]


# ---------------------------------------------------------------- (c) make targets and (d) paths


def make_targets(makefile: str) -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", makefile, re.M))


def make_problems(text: str, makefile: str) -> list[str]:
    targets = make_targets(makefile)
    named = {m for line in code_lines(text, SHELL_BLOCKS) for m in re.findall(r"(?<![\w-])make\s+([a-z][\w-]*)", line)}
    return [f"`make {name}`: no such target in the Makefile" for name in sorted(named - targets)]


def _top_level(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.name not in GENERATED}


def path_problems(text: str, root: Path = REPO) -> list[str]:
    """Every repository path the text shows (in code) exists."""
    top = _top_level(root)
    candidates = set()
    for line in code_lines(text):
        for token in re.split(r"[\s`'\"(),]+", line):
            candidates.add(token.rstrip(".:;"))
    problems = []
    for token in sorted(candidates):
        first = token.split("/", 1)[0]
        if not token or first not in top or any(c in token for c in "<>*{}$") or "..." in token:
            continue
        if not (root / token).exists():
            problems.append(f"`{token}`: no such path in the repository")
    return problems


# ---------------------------------------------------------------- (e) links

_MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_AUTOLINK = re.compile(r"<([a-z][a-z0-9+.-]*:[^>\s]+)>")
_BARE_URL = re.compile(r"\bhttps?://[^\s)>\]`'\"]+")


def _on_site(page: Path, root: Path) -> bool:
    return page.resolve().is_relative_to((root / "docs").resolve())


def link_targets(text: str) -> list[str]:
    """Every link the rendered page holds: [text](target), <scheme:...> and bare URLs (GitHub links those), not code."""
    body = re.sub(r"`[^`\n]+`", "", prose(text))
    targets = _MARKDOWN_LINK.findall(body) + _AUTOLINK.findall(body)
    rest = _AUTOLINK.sub("", _MARKDOWN_LINK.sub("", body))
    return targets + [url.rstrip(".,;:!?") for url in _BARE_URL.findall(rest)]


def _external_problem(target: str) -> str | None:
    url = urlsplit(target)
    host = (url.hostname or "").lower()
    if url.scheme not in ("http", "https") or host not in PUBLIC_DOCUMENTATION_HOSTS:
        allowed = ", ".join(sorted(PUBLIC_DOCUMENTATION_HOSTS))
        return f"link {target}: leaves the repository for {host or url.scheme}, not public documentation ({allowed})"
    return None


def link_problems(text: str, page: Path, root: Path = REPO) -> list[str]:
    """Links of `page`: a relative link names a file in the repository (and an existing heading of it); an #anchor
    is a heading of this page (on GitHub, and in the built site for a docs/ page); a link that leaves the
    repository goes to a public documentation host."""
    problems = []
    for target in link_targets(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            if (problem := _external_problem(target)) is not None:
                problems.append(problem)
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page.resolve()
        if not linked.is_relative_to(root.resolve()):
            problems.append(f"link {target}: leaves the repository")
        elif not linked.exists():
            problems.append(f"link {target}: no such path in the repository")
        elif (
            anchor
            and linked.suffix == ".md"
            and anchor not in anchors(linked.read_text(encoding="utf-8"), site=_on_site(linked, root))
        ):
            problems.append(f"link {target}: no such heading")
    return problems


# ---------------------------------------------------------------- the diagram against the template

# Resource type -> what the diagram must call it.
DIAGRAM_NAMES = {
    "AWS::Events::Rule": "EventBridge",
    "AWS::SQS::Queue": "dead-letter queue",
    "AWS::SNS::Topic": "SNS topic",
    "AWS::StepFunctions::StateMachine": "Step Functions",
    "AWS::KMS::Key": "KMS key",
    "AWS::CloudWatch::Alarm": "alarms",
    "AWS::CloudWatch::Dashboard": "dashboard",
    "AWS::SageMaker::Model": "SageMaker",
}
BUCKET_NAMES = {"Input": "input bucket", "Output": "output bucket", "AccessLogs": "access-log bucket"}


def _definition(template: dict) -> dict:
    (machine,) = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::StateMachine" or r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    definition = machine["Properties"]["DefinitionString"]
    if isinstance(definition, dict):
        definition = "".join(part if isinstance(part, str) else "TOKEN" for part in definition["Fn::Join"][1])
    return json.loads(definition)


def state_names(template: dict) -> set[str]:
    names = set()

    def visit(states: dict) -> None:
        for name, state in states.items():
            names.add(name)
            for nested in (state.get("ItemProcessor") or state.get("Iterator") or {},):
                visit(nested.get("States", {}))
            for branch in state.get("Branches", []):
                visit(branch["States"])

    visit(_definition(template)["States"])
    return names


def _resource_diagram_problems(logical_id: str, resource: dict, diagram: str, words: set[str]) -> list[str]:
    """What the diagram lacks for one template resource: its function, model, bucket, role or kind."""
    problems = []
    kind = resource["Type"]
    if kind == "AWS::Lambda::Function":
        match = re.fullmatch(r"Functions([A-Za-z]+?)[0-9A-F]{8}", logical_id)
        if match and match.group(1) not in words:
            problems.append(f"function {match.group(1)} is not in the diagram")
    elif kind == "AWS::SageMaker::Model":
        # <stack>-<model key>-<hash of the create-only properties>
        key = re.sub(r"-[0-9a-f]{8}$", "", resource["Properties"]["ModelName"].split("-", 1)[1])
        if key not in words:
            problems.append(f"SageMaker model {key} is not in the diagram")
    elif kind == "AWS::S3::Bucket":
        for part, name in BUCKET_NAMES.items():
            if logical_id.startswith(f"Storage{part}") and name not in diagram:
                problems.append(f"the {name} is not in the diagram")
    elif (
        kind == "AWS::IAM::Role"
        and logical_id.startswith("BedrockBatchServiceRole")
        and "Bedrock service role" not in diagram
    ):
        problems.append("the Bedrock service role is not in the diagram")
    if kind in DIAGRAM_NAMES and DIAGRAM_NAMES[kind] not in diagram:
        problems.append(f"{kind} ({DIAGRAM_NAMES[kind]}) is not in the diagram")
    return problems


def diagram_problems(text: str, template: dict, app_config) -> list[str]:
    diagrams = [body for lang, body in fenced_blocks(text) if lang == "mermaid"]
    if not diagrams:
        return ["no ```mermaid block"]
    diagram = diagrams[0]
    problems = [] if diagram.lstrip().startswith("flowchart") else ["the diagram is not a Mermaid flowchart"]
    words = set(re.findall(r"[\w-]+", diagram))
    resources = template["Resources"]
    for logical_id, resource in resources.items():
        problems += _resource_diagram_problems(logical_id, resource, diagram, words)
    present = {r["Type"] for r in resources.values()}
    for kind, name in DIAGRAM_NAMES.items():
        if kind not in present and name in diagram:
            problems.append(f"the diagram shows {name}, which the template does not have")
    for pipeline in app_config.pipelines.values():
        model = app_config.models[pipeline.model]
        if model.backend == "bedrock" and pipeline.model not in words:
            problems.append(f"Bedrock model {pipeline.model} is not in the diagram")
    return problems + state_name_problems(text, template)


def state_name_problems(text: str, template: dict) -> list[str]:
    """Backticked names joined by arrows are state names (a `<State> failed` stands for each Catch state)."""
    problems = []
    states = state_names(template)
    for span in re.findall(r"`([^`\n]+)`(?=\s*→)|(?<=→)\s*`([^`\n]+)`", prose(text)):
        name = next(s for s in span if s)
        if name not in states and not re.fullmatch(r"<state> failed", name):
            problems.append(f"`{name}`: no such state in the state machine")
    return problems


# ---------------------------------------------------------------- fixtures


def documents() -> dict[Path, str]:
    """README.md and every page of the docs site, by path."""
    pages = sorted(DOCS.rglob("*.md"))
    return {path: path.read_text(encoding="utf-8") for path in [README, *pages]}


def _each(check) -> list[str]:
    """`check(path, text)`'s problems for every document, each prefixed with the document it is in."""
    return [
        f"{path.relative_to(REPO)}: {problem}" for path, text in documents().items() for problem in check(path, text)
    ]


@pytest.fixture(scope="module")
def everything() -> str:
    """Every document at once, for the checks that the docs as a whole name everything."""
    return "\n\n".join(documents().values())


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return build_parser()


@pytest.fixture(scope="module")
def template() -> dict:
    from tests.infrastructure.conftest import cdk_context, synth

    return synth(cdk_context())[2].to_json()


@pytest.fixture(scope="module")
def app_config():
    from batch_pipeline_local.project import load_config

    return load_config()


# ---------------------------------------------------------------- README.md and docs/


def test_the_docs_site_has_pages_and_the_readme_links_to_it():
    pages = {path.name for path in documents() if path != README}
    assert {"index.md", "commands.md", "configuration.md", "architecture.md"} <= pages
    assert "docs/index.md" in link_targets(README.read_text(encoding="utf-8"))


def test_every_command_and_flag_the_docs_name_exists(parser):
    assert _each(lambda path, text: cli_problems(text, parser)[0]) == []


def test_the_docs_name_every_command_and_flag(everything, parser):
    assert cli_coverage_problems(everything, parser) == []


def test_the_command_reference_matches_each_commands_usage(parser):
    assert usage_problems(page_section(COMMAND_REFERENCE), parser) == []


def test_every_command_has_help_and_states_its_exit_status(parser):
    for path, sub in _walk(parser).items():
        if path:
            assert sub.description, f"batch-pipeline {' '.join(path)} has no description"
        if path and not _subcommands(sub):
            assert "Exit status" in (sub.description or ""), (
                f"batch-pipeline {' '.join(path)} --help omits its exit status"
            )
            for action in sub._actions:
                assert action.help, (
                    f"batch-pipeline {' '.join(path)} {action.option_strings or action.dest} has no help"
                )
    names = {name for name in _subcommands(parser)}
    listed = parser.format_help()
    assert all(name in listed for name in names)


def test_every_configuration_key_the_docs_name_exists():
    assert _each(lambda path, text: config_problems(text)) == []


def test_the_configuration_reference_gives_each_keys_real_default():
    assert reference_problems(page_section(CONFIGURATION_REFERENCE)) == []


def test_the_configuration_reference_covers_every_key():
    assert config_coverage_problems(page_section(CONFIGURATION_REFERENCE)) == []


def test_every_make_target_the_docs_name_exists():
    makefile = (REPO / "Makefile").read_text()
    assert _each(lambda path, text: make_problems(text, makefile)) == []


def test_every_repository_path_the_docs_name_exists():
    assert _each(lambda path, text: path_problems(text)) == []


def test_every_link_resolves_in_the_repository_or_goes_to_public_documentation():
    assert _each(lambda path, text: link_problems(text, path)) == []


def test_every_state_name_the_docs_name_exists(template):
    assert _each(lambda path, text: state_name_problems(text, template)) == []


def demo_runs(parser: argparse.ArgumentParser) -> list[tuple[str, str, str]]:
    """(sample, pipeline, status it must end with) of each run `batch-pipeline demo` makes, as its --help lists them."""
    description = _walk(parser)[("demo",)].description or ""
    return re.findall(r"^  examples/(\S+) +pipeline (\S+) +must end (\S+)$", description, re.M)


def demo_table_problems(text: str, runs: list[tuple[str, str, str]]) -> list[str]:
    """The demo's table (docs/local-mode.md, "The demo") lists exactly the runs the demo makes."""
    rows = re.findall(r"^\| `examples/([^`]+)`[^|]*\| `([^`]+)` \|[^|]*\| ([A-Z]+) \|", section(text, "The demo"), re.M)
    return [] if rows == runs else [f"the demo table lists {rows}, the demo runs {runs}"]


def test_the_demo_page_lists_exactly_what_the_demo_runs(parser):
    runs = demo_runs(parser)
    assert runs, "batch-pipeline demo --help lists no sample"
    assert demo_table_problems((DOCS / "local-mode.md").read_text(encoding="utf-8"), runs) == []
    assert demo_table_problems(WRONG, runs) != []


def test_the_architecture_diagram_matches_the_synthesized_template(template, app_config):
    assert diagram_problems(DIAGRAM_PAGE.read_text(encoding="utf-8"), template, app_config) == []


# ---------------------------------------------------------------- the checks can fail

WRONG = """\
## Reference

### `pipelines.<name>.bedrock`

| key | default | meaning |
| --- | --- | --- |
| `min_records_per_job` | `10` | a wrong default |
| `max_records_per_jobs` | `50000` | a misspelt key |

Set `pipelines.<name>.bedrock.timeout_minutes` and `on_demand_concurency`. See [there](#nowhere) and
`stacks/no_such_construct.py`, [the design](../shared/DESIGN.md), [a page](docs/no-such-page.md),
[a heading](docs/configuration.md#no-such-heading), [a blog](https://example.com/post) and
https://docs.aws.amazon.com.evil.example/x; [the Bedrock guide](https://docs.aws.amazon.com/bedrock/) is fine.

```bash
.venv/bin/batch-pipeline frobnicate FILE
.venv/bin/batch-pipeline validate FILE --pipeline summarize --no-such-flag
.venv/bin/batch-pipeline local walk FILE
make deploy-everything
```

Use `--colour`.

```mermaid
flowchart LR
    a["S3 input bucket"] --> b["λ Intake"]
```

`Start run` → `Plan the jobs`
"""


def test_the_checks_find_each_mistake_in_a_wrong_snippet(parser, template, app_config):
    cli = "\n".join(cli_problems(WRONG, parser)[0])
    assert "batch-pipeline frobnicate`: no such command" in cli
    assert "`batch-pipeline validate` has no option --no-such-flag" in cli
    assert "batch-pipeline local walk`: no such command" in cli
    assert "`--colour`: no command has this option" in cli
    assert any("`batch-pipeline demo` is not in the docs" in p for p in cli_coverage_problems(WRONG, parser))
    usage = "\n".join(usage_problems(section(WRONG, "Command reference"), parser))
    assert "command reference: `batch-pipeline demo [--config CDK_JSON] [--json] [--out DIR]` is missing" in usage

    config = "\n".join(config_problems(WRONG))
    assert "`pipelines.<name>.bedrock.timeout_minutes`: no such configuration key" in config
    assert "`on_demand_concurency`: neither a configuration key nor a name in the code" in config
    reference = "\n".join(reference_problems(section(WRONG, "Reference")))
    assert "`pipelines.<name>.bedrock.max_records_per_jobs` (table" in reference
    assert "`pipelines.<name>.bedrock.min_records_per_job`: the docs say default `10`, the model says 100" in reference
    assert any("`timeout_hours`" in p for p in config_coverage_problems(section(WRONG, "Reference")))

    assert make_problems(WRONG, (REPO / "Makefile").read_text()) == [
        "`make deploy-everything`: no such target in the Makefile"
    ]
    assert "`stacks/no_such_construct.py`: no such path in the repository" in path_problems(WRONG)
    links = link_problems(WRONG, README)
    assert "link #nowhere: no such heading" in links
    assert "link ../shared/DESIGN.md: leaves the repository" in links
    assert "link docs/no-such-page.md: no such path in the repository" in links
    assert "link docs/configuration.md#no-such-heading: no such heading" in links
    assert any(p.startswith("link https://example.com/post: leaves the repository for example.com") for p in links)
    assert any(p.startswith("link https://docs.aws.amazon.com.evil.example/x: leaves") for p in links)
    assert not any("https://docs.aws.amazon.com/bedrock/" in p for p in links)
    assert len(links) == 6, links

    diagram = "\n".join(diagram_problems(WRONG, template, app_config))
    assert "function JobControl is not in the diagram" in diagram
    assert "SageMaker model flan-t5-large is not in the diagram" in diagram
    assert "the output bucket is not in the diagram" in diagram
    assert "Bedrock model nova-lite is not in the diagram" in diagram
    assert "`Plan the jobs`: no such state in the state machine" in diagram
    assert "`Start run`" not in diagram
    assert state_name_problems(WRONG, template) == ["`Plan the jobs`: no such state in the state machine"]


def test_a_docs_page_anchor_must_exist_on_github_and_in_the_built_site(tmp_path):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    # GitHub keeps " - " as three hyphens, MkDocs collapses them to one: no anchor works in both, none is accepted.
    page.write_text("# Page\n\n## Before - after\n\n## Plain\n")
    assert anchors(page.read_text(), site=True) == {"page", "plain"}
    assert "before---after" in anchors(page.read_text(), site=False)
    assert link_problems(
        "[a](docs/page.md#before---after) [b](docs/page.md#plain)", tmp_path / "README.md", tmp_path
    ) == ["link docs/page.md#before---after: no such heading"]


def test_dotted_paths_resolve_through_maps_unions_and_free_form_mappings():
    assert (
        resolve(["pipelines", "summarize", "sagemaker", "hyper_params", "batch_size"], [config_module.AppConfig]) == []
    )
    assert resolve(["models", "<name>", "regions", "eu-west-1", "image_uri"], [config_module.AppConfig])
    assert resolve(["models", "<name>", "family"], [config_module.AppConfig])  # Bedrock member of the union
    assert resolve(["pipelines", "<name>", "bedrock", "no_such_key"], [config_module.AppConfig]) is None
    assert resolve(["encryption", "deeper"], [config_module.AppConfig]) is None
    assert _is_placeholder("<name>") and not _is_placeholder("name")
