"""Every generated config parses as Triton's ModelConfig, and the ensemble's tensors line up step to step."""

from pathlib import Path

import onnx
import pytest

from face_analysis.packs.manifest import builtin_packs
from face_analysis.repository import configs
from face_analysis.repository import params as P
from face_analysis.repository.build import BuildError, build_repository
from face_analysis.repository.configs import BuildOptions
from face_analysis.repository.onnx_tools import has_detector_preprocessing, is_detector_batched


def _load(repo: Path, target: str) -> dict:
    models = {}
    for folder in sorted(p for p in repo.iterdir() if p.is_dir()):
        path = folder / "configs" / f"{target}.pbtxt"
        if not path.exists():
            path = folder / "config.pbtxt"
        models[folder.name] = configs.parse(path.read_text())
    return models


def _full_shape(tensor, batched: bool):
    dims = list(tensor.dims)
    return ([-1] + dims) if batched else dims


def _dtype(tensor) -> str:
    return configs.mc.DataType.Name(tensor.data_type)


def _compatible(a, b) -> bool:
    return len(a) == len(b) and all(x == y or -1 in (x, y) for x, y in zip(a, b))


def check_ensemble(models: dict) -> None:
    ens = models[configs.ENSEMBLE]
    available = {t.name: _full_shape(t, False) for t in ens.input}
    dtypes = {t.name: _dtype(t) for t in ens.input}
    for step in ens.ensemble_scheduling.step:
        model = models[step.model_name]
        batched = model.max_batch_size > 0
        inputs = {t.name: t for t in model.input}
        for model_input, tensor in step.input_map.items():
            assert model_input in inputs, f"{step.model_name} has no input {model_input}"
            assert tensor in available, f"{step.model_name}.{model_input} reads {tensor} before any step makes it"
            assert _compatible(_full_shape(inputs[model_input], batched), available[tensor]), (step.model_name, tensor)
            assert _dtype(inputs[model_input]) == dtypes[tensor], (step.model_name, tensor)
        required = {n for n, t in inputs.items() if not t.optional}
        assert required <= set(step.input_map), f"{step.model_name} misses {required - set(step.input_map)}"
        outputs = {t.name: t for t in model.output}
        for model_output, tensor in step.output_map.items():
            assert model_output in outputs, f"{step.model_name} has no output {model_output}"
            available[tensor] = _full_shape(outputs[model_output], batched)
            dtypes[tensor] = _dtype(outputs[model_output])
    for out in ens.output:
        assert out.name in available, f"no step produces ensemble output {out.name}"
        assert _compatible(list(out.dims), available[out.name]), out.name
        assert _dtype(out) == dtypes[out.name], out.name


@pytest.fixture(scope="module")
def repos(tmp_path_factory, test_pack, shared_models, attr_pack, attr_pack_dir):
    base = tmp_path_factory.mktemp("configs")
    return {
        "test": build_repository(test_pack, shared_models, base / "test"),
        "attributes": build_repository(attr_pack, attr_pack_dir, base / "attr", BuildOptions(max_faces=200)),
    }


@pytest.mark.parametrize("target", ["gpu", "cpu"])
@pytest.mark.parametrize("pack", ["test", "attributes"])
def test_configs_parse_and_the_ensemble_lines_up(repos, pack, target):
    models = _load(repos[pack], target)
    expected = {"preprocess", "detector", "align", "embedder", "postprocess", configs.ENSEMBLE}
    assert set(models) == expected | ({"attributes"} if pack == "attributes" else set())
    for name, cfg in models.items():
        assert cfg.name == name
    check_ensemble(models)


def test_every_pbtxt_file_parses(repos):
    files = [p for repo in repos.values() for p in repo.rglob("*.pbtxt")]
    assert len(files) >= 2 * 6
    for path in files:
        configs.parse(path.read_text())


def test_targets_differ_where_they_should(repos):
    gpu, cpu = _load(repos["attributes"], "gpu"), _load(repos["attributes"], "cpu")
    for name in ("detector", "embedder", "attributes"):
        assert gpu[name].backend == "onnxruntime" and cpu[name].backend == "python"
        assert gpu[name].instance_group[0].kind == gpu[name].instance_group[0].KIND_GPU
        accel = gpu[name].optimization.execution_accelerators.gpu_execution_accelerator[0]
        assert accel.name == "tensorrt" and accel.parameters["precision_mode"] == "FP16"
        assert accel.parameters["trt_engine_cache_enable"] == "1"
    assert gpu["embedder"].max_batch_size == cpu["embedder"].max_batch_size == 200
    trt = gpu["embedder"].optimization.execution_accelerators.gpu_execution_accelerator[0].parameters
    assert trt["trt_profile_max_shapes"] == "input0:200x3x112x112"  # every batch the batcher can form
    assert trt["trt_profile_min_shapes"] == "input0:1x3x112x112"


def test_packs_without_attributes_have_no_gender_or_age(repos):
    ens = _load(repos["test"], "cpu")[configs.ENSEMBLE]
    assert {t.name for t in ens.output} == {"boxes", "scores", "landmarks", "embeddings"}
    assert ens.parameters["attributes"].string_value == "false"
    with_attrs = _load(repos["attributes"], "cpu")[configs.ENSEMBLE]
    assert {"gender", "age"} <= {t.name for t in with_attrs.output}


def test_ensemble_says_which_pack_it_serves(repos):
    params = _load(repos["test"], "cpu")[configs.ENSEMBLE].parameters
    assert params["pack"].string_value == "test"
    assert params["embedding_size"].string_value == "128"


def test_models_are_rewritten_so_triton_can_batch_them(repos, shared_models):
    repo = repos["test"]
    det = onnx.load(str(repo / "detector/1/model.onnx"))
    assert is_detector_batched(det) and not is_detector_batched(onnx.load(str(shared_models / "det_500m.onnx")))
    assert has_detector_preprocessing(det)  # takes the uint8 canvases and normalises them itself
    assert (repo / "embedder/1/model.onnx").read_bytes() != (shared_models / "mobilefacenet.onnx").read_bytes()


def test_detector_batches_across_requests_on_both_targets(repos):
    for target in ("gpu", "cpu"):
        det = _load(repos["test"], target)["detector"]
        assert det.max_batch_size == BuildOptions().detector_max_batch
        assert det.HasField("dynamic_batching")
        assert det.input[0].name == "input.1"
        assert _dtype(det.input[0]) == "TYPE_UINT8" and list(det.input[0].dims) == [640, 640, 3]
        assert [list(o.dims) for o in det.output][:3] == [[12800, 1], [3200, 1], [800, 1]]
        pre = _load(repos["test"], target)["preprocess"]
        out = {t.name: t for t in pre.output}[P.DET_INPUT]
        assert _dtype(out) == "TYPE_UINT8" and list(out.dims) == [1, 640, 640, 3]  # the letterboxed canvas
        assert not {"mean", "std", "colour"} & set(pre.parameters)  # the detector's graph normalises
    trt = _load(repos["test"], "gpu")["detector"].optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert trt.parameters["trt_profile_max_shapes"] == "input.1:8x640x640x3"
    assert trt.parameters["trt_profile_min_shapes"] == "input.1:1x640x640x3"
    align = _load(repos["test"], "cpu")["align"]
    assert [list(t.dims) for t in align.input][0] == [1, 12800, 1]  # one image's slice of the detector batch


def test_build_refuses_to_overwrite_a_foreign_folder(tmp_path, test_pack, shared_models):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(BuildError, match="not a repository this tool built"):
        build_repository(test_pack, shared_models, tmp_path)
    assert (tmp_path / "mine.txt").exists()


def test_build_names_the_missing_file(tmp_path, test_pack):
    with pytest.raises(BuildError, match="det_500m.onnx not found"):
        build_repository(test_pack, tmp_path, tmp_path / "out")


@pytest.mark.parametrize("name", sorted(builtin_packs()))
def test_builtin_packs_describe_every_role(name):
    pack = builtin_packs()[name]
    assert pack.detector.file.endswith(".onnx") and pack.recognizer.embedding_size in (128, 512)
    assert pack.source.get("url") or pack.source.get("local_dir")
    assert (pack.attributes is None) == (name in ("buffalo_sc", "test"))


def test_a_detector_without_landmarks_is_refused(tmp_path, test_pack, shared_models):
    """Recognition crops need the 5 keypoints: a SCRFD export without them cannot serve this pipeline."""
    import onnx

    model = onnx.load(str(shared_models / "det_500m.onnx"))
    keep = [o for o in model.graph.output][:6]  # scores and boxes only
    del model.graph.output[:]
    model.graph.output.extend(keep)
    for name in ("mobilefacenet.onnx",):
        (tmp_path / name).symlink_to(shared_models / name)
    onnx.save(model, str(tmp_path / "det_500m.onnx"))
    with pytest.raises(BuildError, match="no landmarks"):
        build_repository(test_pack, tmp_path, tmp_path / "out")
