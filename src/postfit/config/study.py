"""Study files: the `Study` model that holds every stage's options (stages.py), parsing and the option table.

The field descriptions below are the manual: `postfit options` prints them and the option table of
docs/study-file.md is generated from them. Unknown keys are errors; every error names the file and
the key's path.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from postfit.config.data import DataConfig
from postfit.config.recipes import RL, SFT, trainers
from postfit.config.scaling import ContaminationOptions, ProbesConfig, check_scaling
from postfit.config.stages import (
    EvalOptions,
    GridConfig,
    ModelSpec,
    PretrainConfig,
    ReportOptions,
    ResourcesOptions,
    SandboxOptions,
    Strict,
    TasksConfig,
)
from postfit.config.training import RLOptions, SFTOptions
from postfit.errors import UserError

# Where and how a study runs, not what it computes: left out of the fingerprint. The speed options give the same
# results to float rounding (greedy decoding token for token), so a study may resume with them changed.
_UNFINGERPRINTED = {"description": True, "sandbox": True, "resources": True, "report": {"to"},
                    "model": {"attn_implementation"}, "eval": {"cuda_graphs"},
                    "sft": {"padding_free", "liger", "compile"}, "rl": {"liger", "compile"}}  # fmt: skip

# Options added after studies were first run: at their default they compute what studies did before them, so they
# hash only where they differ from it. A pass-through TRL field (`sft.trainer`, `rl.trainer`) is hashed whatever it
# is: postfit cannot tell which of TRL's fields change results, so each one counts as changing them.
_LATER = [("rl", "rollouts"), ("rl", "rewards"), ("rl", "trainer"), ("sft", "trainer"), ("data", "sft", "subset"),
          ("data", "sft", "columns"), ("data", "rl", "subset"), ("data", "rl", "columns"),
          ("eval", "protocol"), ("eval", "samples_by_split")]  # fmt: skip


class Study(Strict):
    """A study: one architecture, several initialisations, the same post-training, ID and OOD evaluation."""

    name: str = Field(description="Study name (also the default output directory name).")
    description: str = Field("", description="Free text shown in the report.")
    model: ModelSpec
    pretrain: PretrainConfig | None = Field(None, description="Pre-training of a preset (required for presets).")
    tasks: TasksConfig | None = Field(None, description="Procedural tasks (post-training data and evaluation splits).")
    data: DataConfig = Field(default_factory=DataConfig, description="Real post-training data (see config/data.py).")
    requires_gpu: bool = Field(
        False,
        description="GPU-scale study: `postfit run` refuses to start without a CUDA device (`postfit plan` "
        "shows its cost).",
    )
    grid: GridConfig = Field(default_factory=GridConfig)
    sft: SFTOptions = Field(default_factory=SFTOptions)
    rl: RLOptions = Field(default_factory=RLOptions)
    eval: EvalOptions = Field(default_factory=EvalOptions)
    report: ReportOptions = Field(default_factory=ReportOptions)
    probes: ProbesConfig = Field(default_factory=ProbesConfig)
    contamination: ContaminationOptions = Field(default_factory=ContaminationOptions)
    sandbox: SandboxOptions = Field(default_factory=SandboxOptions)
    resources: ResourcesOptions = Field(default_factory=ResourcesOptions)

    @model_validator(mode="after")
    def _pretrain_matches_model(self) -> Study:
        if self.model.preset is not None and self.pretrain is None:
            raise ValueError("`pretrain` is required when `model.preset` is set")
        if self.model.name_or_path is not None and self.pretrain is not None:
            raise ValueError("`pretrain` applies only to presets; remove it for `model.name_or_path`")
        return self

    @model_validator(mode="after")
    def _data_for_every_stage(self) -> Study:
        """Each recipe needs its data and evaluation needs a split, from `tasks` or from `data`/`eval.benchmarks`."""
        used = {t for r in self.grid.recipes for t in trainers(r)}
        if self.tasks is None:
            for trainer, data in ((SFT, self.data.sft), (RL, self.data.rl)):
                if trainer in used and data is None:
                    raise ValueError(f"grid.recipes: recipe `{trainer}` needs `tasks` or `data.{trainer}`")
            if not self.eval.benchmarks:
                raise ValueError("eval.benchmarks: nothing to evaluate without `tasks`; name benchmarks here")
        return self

    @model_validator(mode="after")
    def _samples_on_evaluated_splits(self) -> Study:
        splits = [*(self.tasks.eval_splits() if self.tasks else []), *self.eval.benchmarks]
        if unknown := [s for s in self.eval.samples_by_split if s not in splits]:
            raise ValueError(f"eval.samples_by_split: {unknown[0]!r} is not a split this study evaluates; its "
                             f"splits: {', '.join(splits)}")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _rl_rows_apart_from_sft(self) -> Study:
        why = self.data.row_overlap()
        if why and not self.contamination.drop:
            raise ValueError(why)
        return self

    @model_validator(mode="after")
    def _scaling_axes(self) -> Study:
        check_scaling(self)
        return self

    def fingerprint(self) -> str:
        """Hash of everything that determines results (the description, the sandbox opt-in, the scheduler's
        `resources`, the trackers of `report.to`, where vLLM's server runs and the speed options do not)."""
        # Where to run is not what is run: vLLM's server address never blocks resuming a study.
        data = self.model_dump(mode="json", exclude=_UNFINGERPRINTED)
        for *path, key in _LATER:  # options added later hash only where they differ from what came before
            block, model = data, self
            for part in path:
                block, model = (block or {}).get(part), getattr(model, part, None)
            field = type(model).model_fields[key] if model is not None else None
            if block is not None and block[key] == field.get_default(call_default_factory=True):
                del block[key]
        if vllm := data["rl"].get("vllm"):
            data["rl"]["vllm"] = {k: v for k, v in vllm.items() if k not in ("server_host", "server_port")}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def builtin_studies() -> dict[str, Path]:
    folder = resources.files("postfit") / "studies"
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")}


def _key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or "-" in str(part):  # pydantic's union/validator tags are not keys
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _describe(err: dict) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    if "input" in err and not isinstance(err["input"], dict):
        return f"{msg} (got {err['input']!r})"
    return msg


def parse_study(data: object, source: str) -> Study:
    """Validate already-parsed YAML; raise UserError naming `source` and each bad key."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: a study file must be a mapping of keys, got {type(data).__name__}")
    try:
        return Study.model_validate(data)
    except ValidationError as e:
        lines = [f"{source}: invalid study file"]
        lines += [f"  {_key_path(err['loc'])}: {_describe(err)}" for err in e.errors()]
        raise UserError("\n".join(lines)) from None


def load_study(ref: str | Path, overrides: Sequence[str] = ()) -> tuple[Study, Path]:
    """Load a study by built-in name (`default`, `smoke`, ...) or path to a YAML file, with `--set` overrides
    (`apply_overrides`) applied before it is validated."""
    builtins = builtin_studies()
    path = builtins.get(str(ref), Path(ref))
    if not path.is_file():
        raise UserError(f"{ref}: no such study file; built-in studies are {sorted(builtins)}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{path}:{where} not valid YAML: {getattr(e, 'problem', e)}") from None
    if not overrides:
        return parse_study(data, str(path)), path
    if not isinstance(data, dict):
        raise UserError(f"{path}: a study file must be a mapping of keys, got {type(data).__name__}")
    return parse_study(apply_overrides(data, overrides), f"{path} with --set {' '.join(overrides)}"), path


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")  # 1e-5: a float in YAML 1.2, a string to PyYAML


def _value(text: str):
    value = yaml.safe_load(text)
    return float(value) if isinstance(value, str) and _FLOAT.fullmatch(value) else value


def _slot(block, part: str, text: str, where: str):
    """The key or list index `part` names in `block`; UserError when `block` is neither a mapping nor a list."""
    if isinstance(block, dict):
        return part
    if isinstance(block, list) and part.isdigit() and int(part) < len(block):
        return int(part)
    raise UserError(f"--set {text!r}: {where} is {block!r}, which has no {part!r} to set")


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """`KEY=VALUE` settings applied to a study's parsed YAML, as TRL's flags override a recipe: KEY is a dotted path
    (`sft.learning_rate`, `sft.trainer.max_grad_norm`, `tasks.train.0.name`; missing blocks are made), VALUE is
    read as YAML (`1e-5`, `true`, `null`, `[0, 1]`, `{a: 1}`). UserError naming the setting that cannot apply."""
    for text in overrides:
        key, eq, raw = text.partition("=")
        parts = key.strip().split(".")
        if not eq or not all(parts):
            raise UserError(f"--set {text!r}: expected KEY=VALUE with a dotted KEY, e.g. sft.learning_rate=1e-5")
        try:
            value = _value(raw)
        except yaml.YAMLError as e:
            raise UserError(f"--set {text!r}: the value is not valid YAML ({getattr(e, 'problem', e)})") from None
        block = data
        for i, part in enumerate(parts):
            at = _slot(block, part, text, ".".join(parts[:i]))
            if i == len(parts) - 1:
                block[at] = value
            else:
                if isinstance(block, dict) and block.get(at) is None:
                    block[at] = {}  # a block the file leaves out (or null) is made
                block = block[at]
    return data


def options_table() -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) for every option, walking the models: the manual's single source."""
    rows: list[tuple[str, str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            ann = field.annotation
            args = getattr(ann, "__args__", (ann,))
            sub = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
            if sub is not None:
                walk(sub, key + ("[]." if getattr(ann, "__origin__", None) is list else "."))
                continue
            default = "required" if field.is_required() else json.dumps(field.get_default(call_default_factory=True))
            type_name = str(ann).replace("typing.", "").replace("<class '", "").replace("'>", "")
            rows.append((key, type_name, default, field.description or ""))

    walk(Study, "")
    return rows


def options_markdown() -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, type_name, default, desc in options_table():
        cells = [f"`{key}`", f"`{type_name}`", f"`{default}`", desc]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
