"""The README against the code: every command, flag, configuration key, make target, path and
diagram node it names must be real.

Each check is a function from README text to a list of problems, so the same functions are run on
the README (no problems) and on a deliberately wrong snippet (each mistake found).
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

import pytest
from pydantic import BaseModel

from batch_pipeline.config import app as config_module
from batch_pipeline_local.cli.main import build_parser

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
# Generated or installed, never named as something the repository holds.
GENERATED = {".venv", "node_modules", "cdk.out", ".cache", ".git", "llm_batch_pipeline.egg-info", "demo-out"}
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
    """Lines of code the README shows: fenced lines (comments cut; only `languages` if given) and inline spans."""
    lines = []
    for lang, body in fenced_blocks(text):
        if lang in ("mermaid", "json", "python") or (languages is not None and lang not in languages):
            continue
        lines += [re.sub(r"\s#\s.*$", "", line) for line in body.splitlines()]
    return lines + inline_spans(text)


def section(text: str, heading: str) -> str:
    """The body of a `## heading` section, up to the next `## `."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return match.group(1) if match else ""


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


# ---------------------------------------------------------------- (a) the CLI


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def _invocations(text: str) -> list[list[str]]:
    """Token lists following each `batch-pipeline` the README shows with something after it."""
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
    """Problems, and for each (sub)command path the flags the README names for it."""
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
    """Every command and every option of it is named somewhere in the README."""
    _, named = cli_problems(text, parser)
    problems = []
    for path, sub in _walk(parser).items():
        if not path:
            continue
        if path not in named and not _subcommands(sub):
            problems.append(f"`batch-pipeline {' '.join(path)}` is not in the README")
            continue
        if _subcommands(sub):
            continue
        for option in sorted(o for o in _options(sub) if o.startswith("--") and o != "--help"):
            if option not in named.get(path, set()):
                problems.append(f"`batch-pipeline {' '.join(path)} {option}` is not in the README")
    return problems


def usage(parser: argparse.ArgumentParser) -> str:
    """A command's usage line as the README's command reference shows it: one line, without [-h]."""
    return " ".join(parser.format_usage().split()).removeprefix("usage: ").replace("[-h] ", "")


def usage_problems(text: str, parser: argparse.ArgumentParser) -> list[str]:
    """The command reference shows each command exactly as its --help usage line does, and every command."""
    rows = re.findall(r"^\| `(batch-pipeline [^`]*(?:\\\|[^`]*)*)` \|", section(text, "Command reference"), re.M)
    shown = {row.replace("\\|", "|") for row in rows}
    problems = []
    for path, sub in _walk(parser).items():
        if not path or _subcommands(sub):
            continue
        if usage(sub) not in shown:
            problems.append(f"command reference: `{usage(sub)}` is missing or differs from the README's row")
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
    # The reference tables: #### `<path>` headings, then | key | default | meaning | rows.
    reference = section(text, "Configuration reference")
    for match in re.finditer(r"^#### `([^`]+)`(?P<qualifier>[^\n]*)\n(?P<body>.*?)(?=^#|\Z)", reference, re.M | re.S):
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
                    f"`{'.'.join(path)}`: README says default {default.strip()}, the model says {', '.join(actual)}"
                )
    # Bare snake_case names: a configuration field, or a name the code uses.
    for span in inline_spans(text):
        if re.fullmatch(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+", span) and span not in fields and span not in _source_words():
            problems.append(f"`{span}`: neither a configuration key nor a name in the code")
    return problems


def config_coverage_problems(text: str) -> list[str]:
    """Every field of the configuration model is in a reference table."""
    reference = section(text, "Configuration reference")
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
    anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", prose(text), re.M)}
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(text)):
        if target.startswith("#"):
            if target[1:] not in anchors:
                problems.append(f"link {target}: no such heading")
        elif not re.match(r"(?:https?:|\.\./)", target) and not (root / target).exists():
            problems.append(f"link {target}: no such path in the repository")
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
    # Backticked names joined by arrows are state names (a `<State> failed` stands for each Catch state).
    states = state_names(template)
    for span in re.findall(r"`([^`\n]+)`(?=\s*→)|(?<=→)\s*`([^`\n]+)`", prose(text)):
        name = next(s for s in span if s)
        if name not in states and not re.fullmatch(r"<state> failed", name):
            problems.append(f"`{name}`: no such state in the state machine")
    return problems


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text(encoding="utf-8")


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


# ---------------------------------------------------------------- the README


def test_every_command_and_flag_the_readme_names_exists(readme, parser):
    assert cli_problems(readme, parser)[0] == []


def test_the_readme_names_every_command_and_flag(readme, parser):
    assert cli_coverage_problems(readme, parser) == []


def test_the_command_reference_matches_each_commands_usage(readme, parser):
    assert usage_problems(readme, parser) == []


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


def test_every_configuration_key_the_readme_names_exists_with_its_default(readme):
    assert config_problems(readme) == []


def test_the_configuration_reference_covers_every_key(readme):
    assert config_coverage_problems(readme) == []


def test_every_make_target_the_readme_names_exists(readme):
    assert make_problems(readme, (REPO / "Makefile").read_text()) == []


def test_every_repository_path_and_anchor_the_readme_names_exists(readme):
    assert path_problems(readme) == []


def test_the_architecture_diagram_matches_the_synthesized_template(readme, template, app_config):
    assert diagram_problems(readme, template, app_config) == []


# ---------------------------------------------------------------- the checks can fail

WRONG = """\
## Configuration reference

#### `pipelines.<name>.bedrock`

| key | default | meaning |
| --- | --- | --- |
| `min_records_per_job` | `10` | a wrong default |
| `max_records_per_jobs` | `50000` | a misspelt key |

Set `pipelines.<name>.bedrock.timeout_minutes` and `on_demand_concurency`. See [there](#nowhere) and
`stacks/no_such_construct.py`.

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
    assert any("`batch-pipeline demo` is not in the README" in p for p in cli_coverage_problems(WRONG, parser))
    usage = "\n".join(usage_problems(WRONG, parser))
    assert "command reference: `batch-pipeline demo [--config CDK_JSON] [--json] [--out DIR]` is missing" in usage

    config = "\n".join(config_problems(WRONG))
    assert "`pipelines.<name>.bedrock.timeout_minutes`: no such configuration key" in config
    assert "`pipelines.<name>.bedrock.max_records_per_jobs` (table" in config
    assert "`pipelines.<name>.bedrock.min_records_per_job`: README says default `10`, the model says 100" in config
    assert "`on_demand_concurency`: neither a configuration key nor a name in the code" in config
    assert any("`timeout_hours`" in p for p in config_coverage_problems(WRONG))

    assert make_problems(WRONG, (REPO / "Makefile").read_text()) == [
        "`make deploy-everything`: no such target in the Makefile"
    ]
    paths = path_problems(WRONG)
    assert "`stacks/no_such_construct.py`: no such path in the repository" in paths
    assert "link #nowhere: no such heading" in paths

    diagram = "\n".join(diagram_problems(WRONG, template, app_config))
    assert "function JobControl is not in the diagram" in diagram
    assert "SageMaker model flan-t5-large is not in the diagram" in diagram
    assert "the output bucket is not in the diagram" in diagram
    assert "Bedrock model nova-lite is not in the diagram" in diagram
    assert "`Plan the jobs`: no such state in the state machine" in diagram
    assert "`Start run`" not in diagram


def test_dotted_paths_resolve_through_maps_unions_and_free_form_mappings():
    assert (
        resolve(["pipelines", "summarize", "sagemaker", "hyper_params", "batch_size"], [config_module.AppConfig]) == []
    )
    assert resolve(["models", "<name>", "regions", "eu-west-1", "image_uri"], [config_module.AppConfig])
    assert resolve(["models", "<name>", "family"], [config_module.AppConfig])  # Bedrock member of the union
    assert resolve(["pipelines", "<name>", "bedrock", "no_such_key"], [config_module.AppConfig]) is None
    assert resolve(["encryption", "deeper"], [config_module.AppConfig]) is None
    assert _is_placeholder("<name>") and not _is_placeholder("name")
