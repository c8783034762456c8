"""The model card written next to a built-in model: what it is, how it was built, what it scored."""

from __future__ import annotations

from . import catalog


def model_card(name: str, record: dict) -> str:
    """Markdown from the build record (``edgebert_builtin.json`` keeps the same facts as JSON)."""
    model = catalog.get(name)
    acc = record["test_accuracy"]
    rate = record.get("test_accuracy_rate")
    interval = f" (95% CI {rate['ci95'][0]:.3f} to {rate['ci95'][1]:.3f}, n={rate['n']})" if rate else ""
    lines = [f"# edgebert built-in `{name}`", "", model.description + ".", "",
             f"- architecture: {record['architecture']}"]
    if "layout" in record:
        lines.append("- groups: " + ", ".join(f"{k} {v}" for k, v in record["layout"].items()))
    if model.teacher:
        lines.append(f"- teacher: built-in `{model.teacher}` (cache entry {record.get('teacher')})")
    lines += [f"- pretrained encoder: {record.get('pretrained', 'sentence-transformers/all-MiniLM-L6-v2 (via teacher)')}",
              f"- trained on: {record['data']}",
              f"- held-out accuracy (built-in test split): {acc:.4f}{interval}",
              "- recipe: " + ", ".join(f"{k}={v}" for k, v in record["recipe"].items())]
    if "encoder_macs_per_token_at_128" in record:
        lines.append(f"- encoder MACs per token at 128 tokens: {record['encoder_macs_per_token_at_128'] / 1e6:.2f} M "
                     f"(teacher {record['teacher_encoder_macs_per_token_at_128'] / 1e6:.2f} M)")
    if "least_squares_relative_error_per_layer" in record:
        errs = ", ".join(f"{e:.3f}" for e in record["least_squares_relative_error_per_layer"])
        lines.append(f"- least-squares start, relative error of each layer's output: {errs}")
    lines.append(f"- build: {record['build_seconds']} s with {record['torch_threads']} torch threads")
    return "\n".join(lines) + "\n"
