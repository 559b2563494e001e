"""Named cells: one YAML spec per preset in ``conf/cell/``; a new variant is a new file."""

from __future__ import annotations

from pathlib import Path

import yaml

from ablate.cells.spec import CellSpec, SpecError
from ablate.paths import config_dir


def preset_dir() -> Path:
    return config_dir() / "cell"


def preset_names() -> list[str]:
    return sorted(p.stem for p in preset_dir().glob("*.yaml"))


def preset(name_or_path: str | Path) -> CellSpec:
    """The spec of a shipped preset (``"cifg"``) or of a YAML file (``"my/cell.yaml"``)."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix not in (".yaml", ".yml"):
        path = preset_dir() / f"{text}.yaml"
        if not path.is_file():
            raise SpecError(
                f"unknown cell preset {text!r} (known: {', '.join(preset_names())}; "
                "or give a path to a YAML spec)"
            )
    return load_spec(path)


def load_spec(path: Path) -> CellSpec:
    if not path.is_file():
        raise SpecError(f"cell spec file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise SpecError(f"cell spec file {str(path)!r} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise SpecError(f"cell spec file {str(path)!r} must hold a mapping of fields")
    return CellSpec.from_dict(data)
