"""The channels-last SqueezeBERT that litert-torch converts (export/squeezebert_channels_last.py).

Real tiny models from config, real litert-torch conversion and LiteRT runtime: the rewrite must be the
same function as the stock HF module and must remove the layout TRANSPOSEs around the grouped convs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgebert.devices.litert import LiteRT
from edgebert.errors import UsageError
from edgebert.export.squeezebert_channels_last import ChannelsLastSqueezeBert
from edgebert.export.tflite import SQUEEZEBERT_FORM, converted_module, export_tflite
from edgebert.models import get
from edgebert.models.grouped import PAPER_GROUPS
from edgebert.quantize.tflite import consumers_of
from support import VOCAB, load_tokenizer, write_tokenizer

SEQ = 32
LAYERS = 2  # tiny_config


def tiny(groups: int):
    torch.manual_seed(0)
    arch = get("squeezebert")
    # a wide init so logits are O(1) and a 1e-5 tolerance means something
    cfg = arch.tiny_config(vocab_size=len(VOCAB), initializer_range=0.3, **{k: groups for k in PAPER_GROUPS})
    return arch.model_class(cfg).eval()


def padded_batch(length: int = 24):
    ids = torch.randint(5, len(VOCAB), (3, length), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0
    mask[2, 4:] = 0
    return ids, mask


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    write_tokenizer(d)
    return load_tokenizer(d)


@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("form", ["linear", "bmm", "qkv"])
def test_channels_last_module_is_the_stock_function(groups, form):
    model = tiny(groups)
    ids, mask = padded_batch()
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).logits
        got = ChannelsLastSqueezeBert(model, form)(ids, mask).logits
        unmasked = ChannelsLastSqueezeBert(model, form)(ids, torch.ones_like(mask)).logits
    assert ref.abs().max() > 0.1  # not a trivially small output
    assert (got - ref).abs().max() < 1e-5
    assert (unmasked - ref).abs().max() > 1e-3  # the padding mask is really applied


def test_bad_form_and_model_are_one_line_errors():
    with pytest.raises(UsageError, match="unknown SqueezeBERT TFLite form 'nchw'; use one of stock, linear, bmm, qkv"):
        converted_module(tiny(4), "nchw")
    with pytest.raises(UsageError, match="for SqueezeBERT classifiers"):
        ChannelsLastSqueezeBert(torch.nn.Linear(2, 2))
    distil = get("distilbert").model_class(get("distilbert").tiny_config(vocab_size=len(VOCAB)))
    assert converted_module(distil) == (distil, [])  # other architectures convert as they are


def _transposes(rec: dict) -> int:
    return rec["op_counts"].get("TRANSPOSE", 0)


def test_tflite_export_converts_the_rewrite_and_matches_pytorch(tmp_path, tok):
    assert SQUEEZEBERT_FORM == "linear"
    model = tiny(4)
    stock = export_tflite(model, tok, tmp_path / "stock.tflite", SEQ, 1e-4, squeezebert_form="stock")
    rec = export_tflite(model, tok, tmp_path / "model.tflite", SEQ, 1e-4)
    assert stock["graph_rewrites"] == [] and "CONV_2D" in stock["op_counts"]
    (rewrite,) = rec["graph_rewrites"]
    assert rewrite["name"] == "squeezebert_channels_last_linear" and rewrite["count"] == 6 * LAYERS
    assert "TRANSPOSE" in rewrite["why"] and "CONV_2D" not in rec["op_counts"]
    # attention's q/k/v/context reorders are all that is left: 4 per layer (stock: 17 per layer)
    assert _transposes(rec) == 4 * LAYERS and _transposes(stock) >= 15 * LAYERS
    assert rec["validation"]["max_abs_diff"] < 1e-4  # validated against the stock PyTorch model

    runtime = LiteRT(str(tmp_path / "model.tflite"), threads=1)
    ids, mask = padded_batch(SEQ)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).logits.numpy()
    got = runtime.run(ids.numpy(), mask.numpy())  # one padded row at a time, int32, as `check` runs it
    assert np.abs(got - ref).max() < 1e-4

    # the static recipe's GELU-fed detection follows the per-group channel SLICEs: one FC per group
    assert len(consumers_of((tmp_path / "model.tflite").read_bytes())) == 4 * LAYERS
