"""Download a pre-trained checkpoint from the Hugging Face hub into ``data/hub/<id with / as -->/`` (local rule
``download_model``), so that training jobs load it from disk and compute nodes need no network.
``download.json`` (the rule's output) is written last and records the repository and the files."""

import json
from pathlib import Path

from lrcbert.results import job_log

# weights in safetensors only; the tokenizer and config files; no TF/Flax/ONNX copies
ALLOW = ["*.json", "*.txt", "*.model", "*.safetensors"]

if __name__ == "__main__":
    with job_log(snakemake) as smk:  # noqa: F821
        from huggingface_hub import snapshot_download

        folder = Path(smk.output[0]).parent
        path = snapshot_download(repo_id=smk.params.repo_id, local_dir=str(folder), allow_patterns=ALLOW)
        info = {
            "repo_id": smk.params.repo_id,
            "path": str(folder),
            "files": sorted(p.name for p in Path(path).iterdir() if p.is_file()),
        }
        Path(smk.output[0]).write_text(json.dumps(info, indent=2) + "\n")
        print(json.dumps(info, indent=2))
