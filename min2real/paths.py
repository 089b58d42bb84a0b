"""Where the package's data folders are: `models/` (bundled model, cards), `training/` (recipes),
`config/` (node parameters, DDS profile) and `launch/`.

From a checkout (editable or colcon --symlink-install) they sit beside the `min2real` package;
an installed package (pip, colcon) has them under <prefix>/share/min2real, which ament_index
also reports. One function finds them so no caller guesses paths.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "min2real"
DATA_FOLDERS = ("models", "training", "config", "launch")


def _candidates():
    """Roots to look in, in order (lazily: ament_index is asked only when the others fail)."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "package.xml").is_file():  # a checkout (editable / --symlink-install): the repository root
        yield checkout
    yield Path(sys.prefix) / "share" / PACKAGE
    try:  # a sourced ROS 2 workspace
        from ament_index_python.packages import get_package_share_directory

        yield Path(get_package_share_directory(PACKAGE))
    except (ImportError, LookupError, OSError):  # not installed, package unknown, AMENT_PREFIX_PATH unset
        return


def data_folder(name: str) -> Path:
    """The folder `name` (one of DATA_FOLDERS); FileNotFoundError naming where it looked."""
    if name not in DATA_FOLDERS:
        raise ValueError(f"data folder {name!r} is unknown; expected one of {DATA_FOLDERS}")
    looked = []
    for root in _candidates():
        folder = root / name
        if folder.is_dir():
            return folder
        looked.append(str(folder))
    raise FileNotFoundError(f"min2real's {name}/ folder is not installed; looked in {', '.join(looked)}")


def data_file(name: str, relative: str) -> Path:
    """A file under a data folder, e.g. data_file("models", "bundled/min2real_tiny_sim.onnx")."""
    path = data_folder(name) / relative
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (min2real {name}/{relative})")
    return path
