import math

import pytest

from ganstudy.io import atomic_dir, atomic_path, read_json, write_json
from ganstudy.stats import format_ci, mean_ci


def test_atomic_file_is_all_or_nothing(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "d"
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "y").write_text("2")
        raise RuntimeError
    assert [p.name for p in target.iterdir()] == ["x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_mean_ci_matches_t_table():
    mean, half, n = mean_ci([1.0, 2.0, 3.0], 0.95)
    # t(0.975, 2) = 4.302653; sd = 1; half = t * 1 / sqrt(3)
    assert (mean, n) == (2.0, 3) and half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert math.isnan(mean_ci([5.0])[1])
    assert format_ci(2.0, 0.5) == "2.00 ± 0.50" and format_ci(2.0, math.nan) == "2.00"


def test_torch_files_are_byte_reproducible(tmp_path):
    import torch

    from ganstudy.io import save_torch

    state = {"w": torch.arange(6.0).reshape(2, 3), "step": 3}
    save_torch(tmp_path / "a.pt", state)
    save_torch(tmp_path / "b.pt", state)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.load(tmp_path / "a.pt", weights_only=True)["step"] == 3


def test_missing_or_corrupt_json_is_one_clear_error(tmp_path):
    from ganstudy.errors import GanstudyError

    with pytest.raises(GanstudyError, match="missing; run the stage"):
        read_json(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(GanstudyError, match="not readable JSON"):
        read_json(tmp_path / "bad.json")
