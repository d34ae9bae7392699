"""The only module that talks to MLflow. Everyone else reports named scalars and files here.

One experiment per study (``ganstudy/<study>``). Each study execution is a parent run; each
item (variant x seed, a downstream arm x seed) is a child run that train, evaluate and downstream
log into, tagged with the git commit, the DVC stage and its hash, the Prefect flow run, variant,
seed and dataset. The tracking URI is ``tracking.uri`` from ``params.yaml`` unless
``MLFLOW_TRACKING_URI`` is set.

Under the Prefect flow, ``begin_study_run`` makes the parent and the stages find it in
``GANSTUDY_PARENT_RUN_ID``. Under plain ``dvc repro`` each stage finds (or creates) the parent
tagged with the execution key of (study, git commit, params.yaml digest): one ``dvc repro``, or
a resumed one of the same revision and params, shares one parent; ``dvc exp run -S`` with other
params gets its own. The report stage closes that parent and registers the champion generator.

Every call goes through an ``MlflowClient`` with an explicit run id, never the fluent API's
process-global active run, so items running side by side cannot log into each other's runs.
"""

import fcntl
import hashlib
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganstudy import execution
from ganstudy.config import PARAMS_FILE, TrackingConfig, load_section
from ganstudy.errors import GanstudyError
from ganstudy.names import DVC_ROOT_ENV, FLOW_RUN_ENV, PARENT_RUN_ENV, TRACKING_URI_ENV

if TYPE_CHECKING:  # torch is imported where a model is logged: flows import this module
    import torch

# Bounded retries, so a tracking server that is down fails a stage in seconds, not minutes.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
# Run links go to the report, not to stdout (which callers such as the flow may parse).
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

import mlflow  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.protos.databricks_pb2 import (  # noqa: E402
    INVALID_PARAMETER_VALUE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)
from mlflow.tracking import MlflowClient  # noqa: E402

PARENT_TAG = "mlflow.parentRunId"  # what the UI nests children by
GIT_TAG = "mlflow.source.git.commit"
ROLE_TAG = "ganstudy.role"  # "study" on parent runs
KEY_TAG = "ganstudy.execution"  # execution key of a parent made by the stages themselves
STORE_ERRORS = (MlflowException, OSError)
# MLflow 3 guesses an experiment's kind and may open it on the GenAI overview; this kind opens
# it on the runs table and charts.
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
STAGE_HASH_ERROR_TAG = "dvc.stage_hash_error"  # why a DVC stage's run has no dvc.stage_hash


def tracking_uri(cfg: TrackingConfig, root: str | Path = ".") -> str:
    """The URI in force; a relative ``sqlite:///`` path is anchored at the project root."""
    uri = os.environ.get(TRACKING_URI_ENV) or cfg.uri
    match = re.fullmatch(r"sqlite:///(?!/)(.+)", uri)
    if match:
        uri = f"sqlite:///{(Path(root) / match.group(1)).resolve()}"
    return uri


def experiment_name(cfg: TrackingConfig, study: str) -> str:
    return f"{cfg.experiment_prefix}/{study}"


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"train.batch_size": "64", ...}`` as MLflow params want."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


class Run:
    """An active MLflow run; methods mirror what the loop and stages report."""

    def __init__(self, run_id: str, client: MlflowClient | None = None) -> None:
        self.run_id = run_id
        self.client = client or MlflowClient()
        self.experiment_id = self.client.get_run(run_id).info.experiment_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        flat = flatten(params)
        existing = self.client.get_run(self.run_id).data.params  # params are write-once
        new = [Param(k, v) for k, v in flat.items() if k not in existing]
        self.client.log_batch(self.run_id, params=new)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=folder)

    def history_sink(
        self, resumed: bool, prefix: str = ""
    ) -> Callable[[int, Mapping[str, float]], None]:
        """A training loop's ``sink``: logs ``{prefix + name: value}`` at each step. With
        ``resumed`` (training continues from a checkpoint in this run), a step this run already
        holds for a name is skipped: the steps logged between the last checkpoint and an
        interruption are computed again after the resume and would otherwise appear twice."""
        logged: dict[str, int] = {}  # name -> last step the store holds (looked up once)

        def sink(step: int, stats: Mapping[str, float]) -> None:
            fresh = {}
            for name, value in stats.items():
                key = f"{prefix}{name}"
                if resumed and key not in logged:
                    history = self.client.get_metric_history(self.run_id, key)
                    logged[key] = max((m.step for m in history), default=-1)
                if step > logged.get(key, -1):
                    fresh[key] = value
            if fresh:
                self.log_metrics(fresh, step)

        return sink

    def log_generator(self, G: "torch.nn.Module", name: str = "generator") -> str:
        """Log G as an MLflow PyTorch model of this run; returns its model URI."""
        import mlflow.pytorch
        import torch

        import ganstudy

        # Pickle is deliberate (the class ships in code_paths); its caution is logged as a warning.
        logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
        # The model is made here, in the run's experiment: log_model alone would take the
        # experiment from the fluent API's global state.
        model = self.client.create_logged_model(
            self.experiment_id, name=name, source_run_id=self.run_id, tags={"flavor": "pytorch"}
        )
        info = mlflow.pytorch.log_model(
            G.cpu().eval(),
            name=name,
            model_id=model.model_id,
            run_id=self.run_id,  # explicit: no process-global active run
            serialization_format="pickle",  # pt2 would need an input example and more time
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],  # skips slow inference
            code_paths=[str(Path(ganstudy.__file__).parent)],  # loadable without ganstudy installed
        )
        return info.model_uri


def _unavailable(uri: str, err: Exception) -> GanstudyError:
    return GanstudyError(f"MLflow tracking at {uri} is unavailable: {_short(err)}")


def _connect(cfg: TrackingConfig, study: str, root: str | Path) -> tuple[MlflowClient, str, str]:
    """Client, URI and the study's experiment id (created on first use)."""
    uri = tracking_uri(cfg, root)
    mlflow.set_tracking_uri(uri)  # model logging resolves the URI globally
    client = MlflowClient(uri)
    name = experiment_name(cfg, study)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if KIND_TAG not in experiment.tags:  # made before the tag was set, or by hand
            client.set_experiment_tag(experiment.experiment_id, KIND_TAG, KIND)
        return client, uri, experiment.experiment_id
    artifacts = None
    if uri.startswith("sqlite:"):
        artifacts = (Path(root) / cfg.artifacts).resolve().as_uri()
    try:
        made = client.create_experiment(name, artifact_location=artifacts, tags={KIND_TAG: KIND})
        return client, uri, made
    except MlflowException as err:  # a parallel stage created it first
        experiment = client.get_experiment_by_name(name)
        if experiment is None or not _is(err, RESOURCE_ALREADY_EXISTS):
            raise
        return client, uri, experiment.experiment_id


def _context_tags(root: str | Path) -> dict[str, str]:
    """Git commit and Prefect flow run: on parents and children alike."""
    tags = {}
    commit = execution.git_commit(root)
    if commit:
        tags.update({"git_commit": commit, GIT_TAG: commit})
    flow_run = os.environ.get(FLOW_RUN_ENV)
    if flow_run:
        tags["prefect.flow_run_id"] = flow_run
    return tags


def _stage_tags(client: MlflowClient, run_id: str | None, root: str | Path) -> dict[str, str]:
    """``dvc.stage`` / ``dvc.stage_hash`` of the stage that made the run; a later stage of
    another kind logging into it (evaluate into train's run) adds ``dvc.<kind>.stage/_hash``."""
    stage = execution.dvc_stage()
    if stage is None:
        return {}
    prefix = "dvc."
    if run_id is not None:
        made_by = client.get_run(run_id).data.tags.get("dvc.stage")
        if made_by and made_by.split("@")[0] != stage.split("@")[0]:
            prefix = f"dvc.{stage.split('@')[0]}."
    tags = {f"{prefix}stage": stage}
    try:
        stage_hash = execution.dvc_stage_hash(os.environ.get(DVC_ROOT_ENV) or root)
    except execution.StageHashError as err:
        # Said on stderr and on the run; the stage's results do not depend on a tag.
        _warn(f"no {prefix}stage_hash tag for DVC stage {stage}: {err}")
        return {**tags, STAGE_HASH_ERROR_TAG: str(err)}
    if stage_hash:
        tags[f"{prefix}stage_hash"] = stage_hash
    return tags


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _parent_run(
    client: MlflowClient,
    experiment_id: str,
    study: str,
    root: str | Path,
    params_path: str | Path,
    create: bool = True,
) -> str | None:
    """The parent run of this study execution: the flow's, or the one keyed by the execution
    key (found or, with ``create``, created under a file lock, so parallel stages agree on
    one); None when not found and not to be created."""
    given = os.environ.get(PARENT_RUN_ENV)
    if given:
        if not _run_exists(client, given, experiment_id):
            raise GanstudyError(
                f"{PARENT_RUN_ENV}={given} is not a run of study {study!r}'s "
                f"experiment at {client.tracking_uri}"
            )
        return given
    key = execution.execution_key(study, execution.git_commit(root), _digest(params_path))
    with _file_lock(f"{client.tracking_uri}|{experiment_id}|{key}"):
        found = client.search_runs(
            [experiment_id],
            f"tags.`{KEY_TAG}` = '{key}'",
            max_results=1,
            order_by=["attributes.start_time ASC"],
        )
        if found:
            return found[0].info.run_id
        if not create:
            return None
        return _create_parent(client, experiment_id, study, root, params_path, {KEY_TAG: key})


@contextmanager
def _file_lock(what: str) -> Iterator[None]:
    """An exclusive lock, per ``what``, shared by the processes of this machine."""
    digest = hashlib.sha256(what.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"ganstudy-mlflow-{digest}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _create_parent(
    client: MlflowClient,
    experiment_id: str,
    study: str,
    root: str | Path,
    params_path: str | Path,
    tags: Mapping[str, str],
) -> str:
    commit = execution.git_commit(root)
    name = f"{study}-{(commit or 'nogit')[:7]}-{time.strftime('%Y%m%d-%H%M%S')}"
    all_tags = {
        **_context_tags(root),
        ROLE_TAG: "study",
        "study": study,
        "params_sha256": _digest(params_path)[:16],
        **tags,
    }
    run = client.create_run(experiment_id, tags=all_tags, run_name=name)
    if Path(params_path).is_file():
        study_cfg = load_section("study", params_path)
        params = flatten({"study": study_cfg.model_dump()})
        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
    return run.info.run_id


def _digest(params_path: str | Path) -> str:
    """The params file's digest; a fixed one when a caller has no params file (tests)."""
    path = Path(params_path)
    return execution.params_digest(path) if path.is_file() else "no-params-file"


def begin_study_run(root: str, params_path: str, tags: dict[str, str]) -> str:
    """Create the parent run of one study execution (e.g. one flow run) in the study's
    experiment; returns its id, for the stages' ``GANSTUDY_PARENT_RUN_ID``."""
    params_path = str(Path(root) / params_path)
    study = load_section("study", params_path).name
    cfg = load_section("tracking", params_path)
    uri = tracking_uri(cfg, root)
    try:
        client, uri, experiment_id = _connect(cfg, study, root)
        return _create_parent(client, experiment_id, study, root, params_path, tags)
    except STORE_ERRORS as err:
        raise _unavailable(uri, err) from None


def end_study_run(run_id: str, root: str, params_path: str, status: str) -> None:
    """Close a parent run with ``status`` FINISHED or FAILED."""
    cfg = load_section("tracking", str(Path(root) / params_path))
    uri = tracking_uri(cfg, root)
    try:
        MlflowClient(uri).set_terminated(run_id, status=status)
    except STORE_ERRORS as err:
        raise _unavailable(uri, err) from None


@contextmanager
def start_run(
    cfg: TrackingConfig,
    study: str,
    run_name: str,
    tags: Mapping[str, str],
    run_id: str | None = None,
    root: str | Path = ".",
    params_path: str | Path = PARAMS_FILE,
) -> Iterator[Run]:
    """Start (or resume, given ``run_id``) an item's run, a child of the execution's parent."""
    uri = tracking_uri(cfg, root)
    try:
        client, uri, experiment_id = _connect(cfg, study, root)
        if run_id is not None and not _run_exists(client, run_id, experiment_id):
            # Only a run the store does not have (reset, deleted, another experiment); any
            # other error fails below rather than splitting the item's history in two runs.
            _warn(f"MLflow run {run_id} is not in {uri} (experiment {study!r}); starting a new run")
            run_id = None
        parent = _parent_run(client, experiment_id, study, root, params_path)  # created if missing
        # A resumed run joins the execution that resumes it (the UI lists it under this parent).
        all_tags = {
            **tags,
            **_context_tags(root),
            **_stage_tags(client, run_id, root),
            PARENT_TAG: parent,
        }
        if run_id is None:
            run_id = client.create_run(experiment_id, tags=all_tags, run_name=run_name).info.run_id
        else:
            client.update_run(run_id, status="RUNNING")
            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in all_tags.items()])
    except STORE_ERRORS as err:
        raise _unavailable(uri, err) from None
    try:
        yield Run(run_id, client)
    except MlflowException as err:  # e.g. the tracking server went down mid-run
        _close_failed(client, run_id)
        raise GanstudyError(
            f"MLflow tracking at {uri} failed: {_short(err)} (local outputs are kept; "
            "rerun to resume)"
        ) from None
    except BaseException:
        _close_failed(client, run_id)
        raise
    try:
        client.set_terminated(run_id, status="FINISHED")
    except STORE_ERRORS as err:  # the run would stay RUNNING in the UI: the stage fails
        raise GanstudyError(
            f"MLflow tracking at {uri}: could not mark run {run_id} FINISHED: {_short(err)} "
            "(local outputs are kept; rerun to close it)"
        ) from None


def _close_failed(client: MlflowClient, run_id: str) -> None:
    """Mark a run FAILED while another error propagates: that error stays the one raised;
    a store that cannot take the status is a warning beside it, not silence."""
    try:
        client.set_terminated(run_id, status="FAILED")
    except STORE_ERRORS as err:
        _warn(f"could not mark MLflow run {run_id} FAILED (it shows RUNNING): {_short(err)}")


def find_study_run(
    cfg: TrackingConfig, study: str, root: str | Path = ".", params_path: str | Path = PARAMS_FILE
) -> str | None:
    """The parent run of this execution (for links); None when no item of this execution ran
    (DVC found them all unchanged), so none was made."""
    uri = tracking_uri(cfg, root)
    try:
        client, uri, experiment_id = _connect(cfg, study, root)
        return _parent_run(client, experiment_id, study, root, params_path, create=False)
    except STORE_ERRORS as err:
        raise _unavailable(uri, err) from None


def finish_study_run(
    cfg: TrackingConfig,
    study: str,
    root: str | Path = ".",
    params_path: str | Path = PARAMS_FILE,
    metrics: Mapping[str, float] | None = None,
    report_dir: str | Path | None = None,
) -> str | None:
    """Give the execution's parent run the study summary, ``metrics`` (per-variant means,
    so the UI's runs chart shows the study with the children collapsed) and the report
    folder as artifacts under ``report/``; then close it as FINISHED when the stages made it
    themselves (under the flow, ``end_study_run`` closes it). Returns the parent; None when no
    item of this execution ran (nothing to log into). Called by the last stage."""
    uri = tracking_uri(cfg, root)
    try:
        client, uri, experiment_id = _connect(cfg, study, root)
        parent = _parent_run(client, experiment_id, study, root, params_path, create=False)
        if parent is None:
            return None
        if metrics:
            Run(parent, client).log_metrics(metrics)
        if report_dir is not None:
            client.log_artifacts(parent, str(report_dir), artifact_path="report")
        if not os.environ.get(PARENT_RUN_ENV):
            client.set_terminated(parent, status="FINISHED")
    except STORE_ERRORS as err:
        raise _unavailable(uri, err) from None
    return parent


# The model registry: a study's best generator as ``models:/ganstudy-<study>@champion``.

CHAMPION_ALIAS = "champion"
GENERATOR = "generator"  # the model name of a single-generator run (per-class runs log several)


@dataclass(frozen=True)
class Candidate:
    """An item's run and its score: lower is better (a FID)."""

    run_id: str
    metric: str
    value: float
    variant: str
    seed: int


@dataclass(frozen=True)
class Champion:
    """What the registry holds under the alias, and whether this call changed it."""

    name: str  # registered model
    version: str
    candidate: Candidate
    model_id: str
    changed: bool  # False: the alias already pointed at this run's generator

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{CHAMPION_ALIAS}"


def registered_model_name(study: str) -> str:
    return f"ganstudy-{study}"


def register_champion(
    cfg: TrackingConfig, study: str, candidates: list[Candidate], root: str | Path = "."
) -> Champion | None:
    """Register the best candidate that logged one ``generator`` model as ``ganstudy-<study>``
    and point the ``champion`` alias at it; no new version when the alias already points at
    the same run. None when no candidate has such a model."""
    uri = tracking_uri(cfg, root)
    try:
        client, uri, experiment_id = _connect(cfg, study, root)
        for best in sorted(candidates, key=lambda c: c.value):
            model_id = _generator_model(client, experiment_id, best.run_id)
            if model_id is not None:
                return _set_champion(client, registered_model_name(study), best, model_id)
    except STORE_ERRORS as err:
        raise _unavailable(uri, err) from None
    return None


def _generator_model(client: MlflowClient, experiment_id: str, run_id: str) -> str | None:
    """The run's latest ``generator`` model; None for a run without one (e.g. per-class)."""
    models = client.search_logged_models(
        [experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{GENERATOR}'",
        order_by=[{"field_name": "creation_time", "ascending": False}],
        max_results=1,
    )
    return models[0].model_id if models else None


def _set_champion(client: MlflowClient, name: str, best: Candidate, model_id: str) -> Champion:
    try:
        client.get_registered_model(name)
    except MlflowException as err:
        if not _is(err, RESOURCE_DOES_NOT_EXIST):
            raise
        client.create_registered_model(name, description="The study's best generator (FID).")
    try:
        current = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException as err:  # not found: no version has the alias yet
        # (MLflow's SQL store says INVALID_PARAMETER_VALUE for an unknown alias.)
        if not _is(err, RESOURCE_DOES_NOT_EXIST, INVALID_PARAMETER_VALUE):
            raise
        current = None
    if current is not None and current.run_id == best.run_id:
        return Champion(name, str(current.version), best, current.model_id or model_id, False)
    tags = {"variant": best.variant, "seed": str(best.seed), best.metric: f"{best.value:.6g}"}
    version = client.create_model_version(
        name, f"models:/{model_id}", run_id=best.run_id, tags=tags, model_id=model_id
    )
    client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version.version))
    return Champion(name, str(version.version), best, model_id, True)


def _run_exists(client: MlflowClient, run_id: str, experiment_id: str) -> bool:
    """Whether the store holds ``run_id``, active, in this experiment. Only "not found" means
    no; any other error (a server fault, a permission) propagates."""
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        if _is(err, RESOURCE_DOES_NOT_EXIST):
            return False
        raise
    return run.info.experiment_id == experiment_id and run.info.lifecycle_stage == "active"


def _is(err: MlflowException, *codes: int) -> bool:
    return err.error_code in {ErrorCode.Name(code) for code in codes}


def _short(err: Exception) -> str:
    return str(err).strip().splitlines()[0][:300]


def experiment_id(cfg: TrackingConfig, study: str, root: str | Path = ".") -> str | None:
    """The study's MLflow experiment id; None when it does not exist or the store is down."""
    try:
        experiment = MlflowClient(tracking_uri(cfg, root)).get_experiment_by_name(
            experiment_name(cfg, study)
        )
    except STORE_ERRORS:
        return None
    return None if experiment is None else experiment.experiment_id
