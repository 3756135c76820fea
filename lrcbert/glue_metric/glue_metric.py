"""GLUE metrics as an ``evaluate`` module that ships with the project and is loaded by path.

``evaluate.load("glue")`` downloads its script from the hub, which offline compute nodes cannot do; this
module computes the official metric of each GLUE task with scikit-learn and SciPy instead.
Config names are the suite's task names (cola, sst2, mrpc, stsb, qqp, mnli_m, mnli_mm, qnli, rte).
"""
import datasets
import evaluate
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

_DESCRIPTION = "Official GLUE metric per task: MCC for CoLA, F1 and accuracy for MRPC/QQP, Pearson and " \
               "Spearman for STS-B, accuracy otherwise."
_KWARGS = "predictions: predicted labels (or scores for stsb); references: gold labels (or scores)."
_CLASSIFICATION = ("cola", "sst2", "mrpc", "qqp", "mnli", "mnli_m", "mnli_mm", "qnli", "rte", "wnli")


class GlueMetric(evaluate.Metric):
    def _info(self):
        if self.config_name not in _CLASSIFICATION + ("stsb",):
            raise KeyError(f"unknown GLUE task {self.config_name!r}")
        kind = "float32" if self.config_name == "stsb" else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value(kind), "references": datasets.Value(kind)}))

    def _compute(self, predictions, references):
        name = self.config_name
        if name == "cola":
            return {"mcc": float(matthews_corrcoef(references, predictions)),
                    "accuracy": float(accuracy_score(references, predictions))}
        if name == "stsb":
            return {"pearson": float(pearsonr(predictions, references)[0]),
                    "spearman": float(spearmanr(predictions, references)[0])}
        if name in ("mrpc", "qqp"):
            return {"f1": float(f1_score(references, predictions)),
                    "accuracy": float(accuracy_score(references, predictions))}
        return {"accuracy": float(accuracy_score(references, predictions))}
