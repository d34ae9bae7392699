import subprocess
import sys


def test_torchvision_imports_whatever_the_import_order():
    # torchvision first, ganstudy later: must work in a fresh interpreter (the stage scripts'
    # import order is set by isort, not by us).
    code = "from ganstudy.data import augment; import pytorch_fid.inception; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
