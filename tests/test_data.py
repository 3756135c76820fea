"""GLUE loading from a local TSV folder, from the hub (schema mocked in memory), and its error messages."""

import datasets
import pytest

from lrcbert import data as D
from lrcbert.config import load_config
from lrcbert.tasks import TASKS, get_task


def cfg_for(path, **data):
    return load_config(base={"data": {"source": "tsv", "path": str(path), **data}})


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def test_tsv_layouts(tmp_path):
    write(tmp_path / "CoLA/train.tsv", "gj04\t1\t\tThe cat sat .\ngj04\t0\t*\tCat the sat .\n")
    write(tmp_path / "CoLA/test.tsv", "index\tsentence\n0\tA dog ran .\n7\tRan dog .\n")
    write(
        tmp_path / "MNLI/dev_mismatched.tsv",
        "index\tpromptID\tpairID\tgenre\tsentence1\tsentence2\tlabel1\tgold_label\n"
        "0\t1\t1a\tfiction\tA man sleeps .\tA man rests .\tentailment\tentailment\n"
        "1\t2\t2a\tfiction\tA man sleeps .\tA man runs .\tcontradiction\tcontradiction\n",
    )
    write(tmp_path / "STS-B/dev.tsv", "index\tsentence1\tsentence2\tscore\n0\ta b\ta c\t3.800\n")
    cfg = cfg_for(tmp_path)
    cola = D.load_split(cfg, get_task("cola"), "train")
    assert cola["text_a"] == ["The cat sat .", "Cat the sat ."] and cola["label"] == [1, 0]
    test = D.load_split(cfg, get_task("cola"), "test")
    assert test["label"] == [-1, -1] and test["idx"] == [0, 7]
    mm = D.load_split(cfg, get_task("mnli_mm"), "dev")
    assert mm["text_b"] == ["A man rests .", "A man runs ."]
    assert [TASKS["mnli_mm"].labels[i] for i in mm["label"]] == ["entailment", "contradiction"]
    assert D.load_split(cfg, get_task("stsb"), "dev")["label"] == [pytest.approx(3.8)]


@pytest.mark.parametrize(
    "files, task, split, message",
    [
        ({}, "rte", "train", "data file not found: {root}/RTE/train.tsv"),
        (
            {"RTE/train.tsv": "index\tsentence1\tlabel\n0\ta\tentailment\n"},
            "rte",
            "train",
            "RTE/train.tsv: line 1 (header): missing column(s) ['sentence2']",
        ),
        (
            {"RTE/dev.tsv": "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tmaybe\n"},
            "rte",
            "dev",
            "RTE/dev.tsv: line 3, column 4 (label): label 'maybe' is outside the label set "
            "['entailment', 'not_entailment'] of rte",
        ),
        (
            {"SST-2/test.tsv": "index\tsentence\tlabel\n0\tgood\t1\n"},
            "sst2",
            "test",
            "the test split carries labels in column 'label'",
        ),
        (
            {"STS-B/train.tsv": "index\tsentence1\tsentence2\tscore\n0\ta\tb\tnan\n"},
            "stsb",
            "train",
            "STS-B/train.tsv: line 2, column 4 (score): score 'nan' is not a number in [0, 5]",
        ),
        # finding 7: STS-B scores outside [0, 5]
        (
            {"STS-B/train.tsv": "index\tsentence1\tsentence2\tscore\n0\ta\tb\t4.5\n1\ta\tb\t7.5\n"},
            "stsb",
            "train",
            "STS-B/train.tsv: line 3, column 4 (score): score '7.5' is not a number in [0, 5]",
        ),
        (
            {"STS-B/dev.tsv": "index\tsentence1\tsentence2\tscore\n0\ta\tb\t-2\n"},
            "stsb",
            "dev",
            "STS-B/dev.tsv: line 2, column 4 (score): score '-2' is not a number in [0, 5]",
        ),
        # finding 9: empty, non-UTF-8, extra column, short row
        ({"RTE/train.tsv": ""}, "rte", "train", "RTE/train.tsv: empty file (0 bytes)"),
        (
            {"RTE/train.tsv": b"index\tsentence1\tsentence2\tlabel\n0\ta\tcaf\xe9\tentailment\n"},
            "rte",
            "train",
            "RTE/train.tsv: line 2, byte 8: 0xe9 is not UTF-8",
        ),
        (
            {"RTE/train.tsv": "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\textra\n"},
            "rte",
            "train",
            "RTE/train.tsv: line 2: 5 tab-separated fields, expected 4 (index, sentence1, sentence2, label)",
        ),
        (
            {"RTE/train.tsv": "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\n"},
            "rte",
            "train",
            "RTE/train.tsv: line 3: 3 tab-separated fields, expected 4",
        ),
        (
            {"CoLA/train.tsv": "gj04\t1\t\tok .\ngj04\t1\tok\n"},
            "cola",
            "train",
            "CoLA/train.tsv: line 2: 3 tab-separated fields, expected 4 (source, label, original_label, sentence)",
        ),
        (
            {"SST-2/test.tsv": "index\tsentence\n0\tgood\nx1\tbad\n"},
            "sst2",
            "test",
            "SST-2/test.tsv: line 3, column 1 (index): 'x1' is not an integer id",
        ),
    ],
)
@pytest.mark.faults
def test_bad_data_named_in_one_line(tmp_path, files, task, split, message):
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(D.DataError) as e:
        D.load_split(cfg_for(tmp_path), get_task(task), split)
    assert message.format(root=tmp_path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.faults
def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task 'mnli-m'"):
        get_task("mnli-m")


def _fake_hub(config, split):
    """In-memory stand-ins with the nyu-mll/glue schema (column names and ClassLabel names)."""
    if config == "mnli":
        names = ["entailment", "neutral", "contradiction"]
        cols = {"premise": ["p1", "p2"], "hypothesis": ["h1", "h2"], "label": [2, 0], "idx": [0, 1]}
    else:
        names = ["not_equivalent", "equivalent"]
        cols = {"sentence1": ["a"], "sentence2": ["b"], "label": [1 if split != "test" else -1], "idx": [5]}
    feats = datasets.Features(
        {
            k: datasets.ClassLabel(names=names) if k == "label" else datasets.Value("int32" if k == "idx" else "string")
            for k in cols
        }
    )
    return datasets.Dataset.from_dict(cols, features=feats)


def test_hub_source_maps_columns_and_labels(monkeypatch):
    calls = []

    def load_dataset(hub_id, config, split):
        calls.append((hub_id, config, split))
        return _fake_hub(config, split)

    monkeypatch.setattr(D.datasets, "load_dataset", load_dataset)
    cfg = load_config(base={"data": {"source": "hub"}})
    mm = D.load_split(cfg, get_task("mnli_mm"), "dev")
    assert calls[-1] == ("nyu-mll/glue", "mnli", "validation_mismatched")
    assert mm["text_a"] == ["p1", "p2"] and mm["text_b"] == ["h1", "h2"]
    assert [TASKS["mnli_mm"].labels[i] for i in mm["label"]] == ["contradiction", "entailment"]
    mrpc = D.load_split(cfg, get_task("mrpc"), "test")
    assert calls[-1] == ("nyu-mll/glue", "mrpc", "test") and mrpc["idx"] == [5]


@pytest.mark.faults
def test_hub_label_order_mismatch_is_refused(monkeypatch):
    def load_dataset(hub_id, config, split):
        ds = _fake_hub("mnli", split)
        return ds.cast_column("label", datasets.ClassLabel(names=["neutral", "entailment", "contradiction"]))

    monkeypatch.setattr(D.datasets, "load_dataset", load_dataset)
    with pytest.raises(D.DataError, match="label order"):
        D.load_split(load_config(base={"data": {"source": "hub"}}), get_task("mnli"), "train")


def test_dynamic_and_fixed_padding(tokenizer):
    ds = D.tokenize(
        datasets.Dataset.from_dict(
            {"text_a": ["short", "a somewhat longer sentence here"], "label": [0, 1], "idx": [0, 1]}
        ),
        tokenizer,
        32,
    )
    longest = max(len(x) for x in ds["input_ids"])
    dyn = D.Collator(tokenizer, 32, False)([dict(x) for x in ds])
    fixed = D.Collator(tokenizer, 32, True)([dict(x) for x in ds])
    assert dyn["input_ids"].shape == (2, longest) and fixed["input_ids"].shape == (2, 32)
    assert dyn["attention_mask"].sum() == fixed["attention_mask"].sum()
    assert dyn["labels"].tolist() == [0, 1]


def test_epoch_sampler_is_reproducible_and_skips():
    s = D.EpochSampler(10, seed=3)
    s.position(1)
    full = list(s)
    s.position(1, skip=4)
    assert list(s) == full[4:] and len(s) == 6
    s.position(2)
    assert list(s) != full and sorted(s) == list(range(10))
