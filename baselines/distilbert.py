"""DistilBERT-4 (Sanh et al. 2019), task distillation on lrcbert's engine.

Student: 4 transformer layers of the teacher's width (768 for BERT-base), initialised by copying teacher layers
(``model.student_init: teacher_layers``; DistilBERT takes one teacher layer out of k, so the default
``model.student_layers: null`` copies layers i * N / M, i.e. 3, 6, 9, 12 of a 12-layer teacher) with the
teacher's embeddings. Loss, for the whole run: alpha * KL(p_T^tau || p_S^tau) * tau^2 + (1 - alpha) * CE, with
tau = 2 and alpha = 0.5 (DistilBERT's distillation temperature; the weights are ``method.stage2.soft/hard``).
The KL and CE are lrcbert's own ``soft`` and ``hard`` terms (``lrcbert.losses.soft_loss`` with
``soft_t2: true`` and ``hard_loss``), so no new loss function is needed; DistilBERT's cosine embedding loss
belongs to its pre-training stage, which this task-stage baseline does not run.
"""

from lrcbert.presets import Method

ALPHA = 0.5
KD = {"soft": ALPHA, "hard": 1.0 - ALPHA}

METHOD = Method(
    "distilbert",
    {
        "stage_split": 0.0,
        "stage1": dict(KD),
        "stage2": dict(KD),
        "temperature": 2.0,
        "soft_t2": True,
        "perturb": False,
    },
    {"model": {"student_init": "teacher_layers"}},
)
