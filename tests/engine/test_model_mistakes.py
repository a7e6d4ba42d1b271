"""A --model directory holding the wrong kind of model, or a tokenizer that does not fit it, is
refused in one line by `train`, `train --check` alike, before a run directory is made."""

from __future__ import annotations

import pytest
import torch

from aios_tui.tiny import BOS_ID, EOS_ID, PAD_ID, TINY_VOCAB

ENCODER = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
SEQ2SEQ = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
           "decoder_attention_heads": 2, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
           "pad_token_id": PAD_ID, "bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "decoder_start_token_id": BOS_ID}
LLAMA = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
         "num_key_value_heads": 2, "max_position_embeddings": 64}

# saved class -> (config class, its keyword arguments, what the refusal calls it)
KINDS = {
    # loads as BertLMHeadModel / RobertaForCausalLM, attending to the tokens ahead
    "BertForMaskedLM": ("BertConfig", ENCODER, "is a masked-language encoder (BertForMaskedLM)"),
    "RobertaForMaskedLM": ("RobertaConfig", {**ENCODER, "pad_token_id": PAD_ID},
                           "is a masked-language encoder (RobertaForMaskedLM)"),
    "T5ForConditionalGeneration": ("T5Config", {"d_model": 32, "d_ff": 64, "num_layers": 1, "num_heads": 2,
                                                "d_kv": 16, "decoder_start_token_id": PAD_ID},
                                   "is an encoder-decoder (seq2seq) model (T5ForConditionalGeneration)"),
    # loads as WhisperForCausalLM: the text decoder without the audio encoder
    "WhisperForConditionalGeneration": ("WhisperConfig", {**SEQ2SEQ, "num_mel_bins": 8, "max_source_positions": 64,
                                                          "max_target_positions": 64},
                                        "is an encoder-decoder (seq2seq) model (WhisperForConditionalGeneration)"),
    "ViTModel": ("ViTConfig", {**ENCODER, "image_size": 32, "patch_size": 16}, "is a vit model (ViTModel)"),
    "CLIPTextModel": ("CLIPTextConfig", {**ENCODER, "max_position_embeddings": 64},
                      "is a clip_text_model model (CLIPTextModel)"),
}


def _save(model, path):
    from aios_tui.engine.tokenizer import byte_tokenizer

    with torch.random.fork_rng(devices=[]):
        model.save_pretrained(path)
    byte_tokenizer().save_pretrained(path)
    return path


def _train(cli, capsys, tmp_path, model_dir, *extra):
    runs = tmp_path / "runs"
    capsys.readouterr()  # save_pretrained's progress bar
    code, out, err = cli("train", "--model", str(model_dir), "--steps", "1", "--run-dir", str(runs / "r"),
                         "--max-seq-len", "32", "--device", "cpu", *extra)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and lines[0].startswith("aios-tui: error: model.model: "), err
    assert not runs.exists()
    return lines[0]


@pytest.mark.parametrize("check", [False, True], ids=["train", "check"])
@pytest.mark.parametrize("saved", list(KINDS))
def test_a_model_that_is_not_a_causal_lm_is_refused_from_its_config(saved, check, tmp_path, cli, capsys):
    import transformers

    config_cls, kwargs, said = KINDS[saved]
    config = getattr(transformers, config_cls)(vocab_size=TINY_VOCAB, **kwargs)
    model_dir = _save(getattr(transformers, saved)(config), tmp_path / "model")
    line = _train(cli, capsys, tmp_path, model_dir, *(["--check"] if check else ["--progress", "none"]))
    assert f"{model_dir} {said}" in line and "pick a decoder-only causal language model" in line


def test_an_encoder_saved_as_a_decoder_still_trains(tmp_path, cli):
    """BertLMHeadModel with is_decoder=True is a causal LM: its attention is masked."""
    import transformers

    config = transformers.BertConfig(vocab_size=TINY_VOCAB, is_decoder=True, **ENCODER)
    model_dir = _save(transformers.BertLMHeadModel(config), tmp_path / "model")
    code, out, err = cli("train", "--model", str(model_dir), "--steps", "1", "--run-dir", str(tmp_path / "r"),
                         "--max-seq-len", "32", "--device", "cpu", "--progress", "none", "--no-use-peft")
    assert code == 0, err


@pytest.mark.parametrize("check", [False, True], ids=["train", "check"])
def test_a_tokenizer_larger_than_the_embedding_is_refused(check, tmp_path, cli, capsys):
    """Its ids past the embedding were an IndexError traceback at the first step (a device-side
    assert on CUDA), after the run directory was made."""
    import transformers

    config = transformers.LlamaConfig(vocab_size=200, pad_token_id=0, bos_token_id=1, eos_token_id=2, **LLAMA)
    model_dir = _save(transformers.LlamaForCausalLM(config), tmp_path / "model")
    line = _train(cli, capsys, tmp_path, model_dir, *(["--check"] if check else ["--progress", "none"]))
    assert f"the tokenizer in {model_dir} has {TINY_VOCAB} tokens but the model's embedding only 200" in line


@pytest.mark.parametrize("check", [False, True], ids=["train", "check"])
def test_a_sharded_checkpoint_missing_a_shard_is_refused_by_check_too(check, tmp_path, cli, capsys):
    import transformers

    config = transformers.LlamaConfig(vocab_size=TINY_VOCAB, **LLAMA)
    model_dir = tmp_path / "model"
    _save(transformers.LlamaForCausalLM(config), model_dir)
    for f in model_dir.glob("model*.safetensors"):
        f.unlink()
    transformers.LlamaForCausalLM(config).save_pretrained(model_dir, max_shard_size="20KB")
    shards = sorted(model_dir.glob("model-*.safetensors"))
    assert len(shards) > 2
    shards[1].unlink()
    line = _train(cli, capsys, tmp_path, model_dir, *(["--check"] if check else ["--progress", "none"]))
    assert f"{model_dir} lacks {shards[1].name}, a weights file its index names" in line


def test_a_complete_sharded_checkpoint_passes_the_shard_check(tmp_path):
    import transformers

    from aios_tui.engine.models import missing_shards

    transformers.LlamaForCausalLM(transformers.LlamaConfig(vocab_size=TINY_VOCAB, **LLAMA)).save_pretrained(
        tmp_path, max_shard_size="20KB")
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1 and missing_shards(tmp_path) == []
