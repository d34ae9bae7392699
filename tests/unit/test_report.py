import pandas as pd

from ganstudy.report import _table, summarize


def test_table_shows_the_class_mean_not_every_class_and_mixes_variants():
    runs = pd.DataFrame(
        [
            {"variant": "dcgan", "seed": 0, "step": 4, "fid_x": 10.0},
            {"variant": "dcgan", "seed": 1, "step": 4, "fid_x": 12.0},
            {
                "variant": "cgan",
                "seed": 0,
                "step": 4,
                "fid_x": 9.0,
                "fid_x_class0": 1.0,
                "fid_x_class1": 3.0,
                "fid_x_classmean": 2.0,
            },
        ]
    )
    header, body = _table(summarize(runs, 0.95), runs)
    assert header == ["variant", "seeds", "fid_x", "fid_x_classmean"]
    assert body[0][:3] == ["dcgan", "0, 1", "11.00 ± 12.71"] and body[0][3] == "–"
    assert body[1] == ["cgan", "0", "9.00", "2.00"]
