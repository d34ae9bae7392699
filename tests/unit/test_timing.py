"""A run folder's timing.json: the training time a results page reports, across resumes."""

import torch

from ganstudy.io import read_json
from ganstudy.training.run import TIMING_FILE, record_timing

CPU = torch.device("cpu")


def test_timing_adds_up_over_resumed_sessions_and_names_the_machine(tmp_path):
    record_timing(tmp_path, 10.0, step=50, resumed_from=0, device=CPU)
    record_timing(tmp_path, 5.0, step=100, resumed_from=50, device=CPU)  # a resumed session
    timing = read_json(tmp_path / TIMING_FILE)
    assert (timing["seconds"], timing["sessions"], timing["iterations"]) == (15.0, 2, 100)
    assert timing["device"] == "cpu" and timing["threads"] >= 1 and "cores" in timing["machine"]
    record_timing(tmp_path, 0.1, step=100, resumed_from=100, device=CPU)  # found finished
    assert read_json(tmp_path / TIMING_FILE)["seconds"] == 15.0
    record_timing(tmp_path, 3.0, step=100, resumed_from=0, device=CPU)  # a fresh start
    assert read_json(tmp_path / TIMING_FILE)["seconds"] == 3.0
