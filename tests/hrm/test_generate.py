"""ACT-aware decoding: as many segments per token as the halting rule of training gives."""

from __future__ import annotations

import torch

from aios_tui.engine.hrm.generate import generate_ids, next_token_logits


def _set_q(model, halt: float, cont: float) -> None:
    with torch.no_grad():
        model.q_head.bias.copy_(torch.tensor([halt, cont]))


def test_greedy_decoding_follows_the_fixed_depth_forward(make_model, tokens):
    model = make_model(halt_max_steps=3)
    prompt = tokens(1, 6)[0].tolist()
    new, segments = generate_ids(model, prompt, max_new_tokens=5, temperature=0, halting="max")
    assert segments == [3] * 5
    assert model.training  # decoding ran in eval mode and put the mode back
    ids = list(prompt)
    model.eval()
    for token in new:  # each token is the argmax of the evaluation forward over the prefix
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1]
        assert token == int(logits.argmax())
        ids.append(token)


def test_adaptive_halting_reads_the_head_at_the_last_position(make_model, tokens):
    model = make_model(halt_max_steps=4).eval()
    ids = tokens(1, 8)
    _set_q(model, 5.0, -5.0)
    _, used = next_token_logits(model, ids, "adaptive")
    assert used == 1
    _set_q(model, -5.0, 5.0)
    _, used = next_token_logits(model, ids, "adaptive")
    assert used == 4
    # A head that changes its mind after two segments: halt once q_halt wins.
    calls = {"n": 0}
    original = model.segment

    def counting(*args, **kwargs):
        out = original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            out.q_halt_logits = out.q_halt_logits + 20.0
        return out

    model.segment = counting
    logits, used = next_token_logits(model, ids, "adaptive")
    assert used == 2
    model.segment = original
    carry = model.initial_carry(1, 8)
    with torch.no_grad():
        for _ in range(2):
            out = model.segment(ids, carry)
            carry = out.carry
    torch.testing.assert_close(logits, out.logits[:, -1].float())


def test_sampling_is_reproducible_with_a_seed_and_stops_at_eos(make_model, tokens):
    model = make_model(halt_max_steps=2)
    prompt = tokens(1, 5)[0].tolist()
    a = generate_ids(model, prompt, max_new_tokens=8, temperature=1.0, seed=3)
    b = generate_ids(model, prompt, max_new_tokens=8, temperature=1.0, seed=3)
    assert a == b and len(a[0]) == 8
    with torch.no_grad():  # make eos the argmax: its logit is |h|^2 > 0, every other one is 0
        hidden = model.eval()(torch.tensor([prompt])).hidden_states[0, -1]
        model.lm_head.weight.zero_()
        model.lm_head.weight[258].copy_(hidden)
    new, segments = generate_ids(model, prompt, max_new_tokens=8, temperature=0, eos_token_id=258,
                                 halting="max")
    assert new == [] and len(segments) == 1


def test_long_prompts_use_the_last_max_seq_len_tokens(make_model, tokens):
    model = make_model(halt_max_steps=1, max_seq_len=16)
    long_prompt = tokens(1, 40)[0].tolist()
    new, _ = generate_ids(model, long_prompt, max_new_tokens=1, temperature=0)
    model.eval()
    with torch.no_grad():
        expected = int(model(torch.tensor([long_prompt[-16:]])).logits[0, -1].argmax())
    assert new == [expected]


def test_generate_from_a_saved_model_directory_or_bundle(make_model, tmp_path):
    from aios_tui.engine.hrm.bundle import write_bundle
    from aios_tui.engine.hrm.generate import generate_from_path, generate_text, is_hrm_path
    from aios_tui.engine.tokenizer import byte_tokenizer

    model = make_model(halt_max_steps=2)
    tokenizer = byte_tokenizer()
    model.save_pretrained(tmp_path / "saved")
    tokenizer.save_pretrained(str(tmp_path / "saved"))
    write_bundle(tmp_path / "bundle", model=model, tokenizer=tokenizer, session={"steps": 0},
                 tokenizer_source="tiny")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "status.json").write_text("{}")
    assert is_hrm_path(tmp_path / "saved") and is_hrm_path(tmp_path / "bundle")
    assert not is_hrm_path(tmp_path / "run")
    expected = generate_text(model, tokenizer, "ab", max_new_tokens=6, temperature=0)
    for where in ("saved", "bundle"):
        got = generate_from_path(tmp_path / where, "ab", max_new_tokens=6, temperature=0, device="cpu")
        assert got.token_ids == expected.token_ids and got.text == expected.text


def test_generate_from_an_exported_adapter_of_a_bundle_or_an_hrm_model(make_model, tmp_path):
    """`aios-tui export BUNDLE` (or an HRM run) writes an adapter whose base is HRM ACTv1:
    generating from it applies the adapter to that base, as generating from the bundle does."""
    from peft import LoraConfig, get_peft_model

    from aios_tui.engine.generate import generate
    from aios_tui.engine.hrm.bundle import export_bundle, write_bundle
    from aios_tui.engine.tokenizer import byte_tokenizer

    tokenizer = byte_tokenizer()
    base = make_model(halt_max_steps=2)
    base.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(str(tmp_path / "base"))
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            modules_to_save=["q_head"]))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.5)
    bundle = write_bundle(tmp_path / "bundle", model=model, tokenizer=tokenizer, session={"steps": 1},
                          tokenizer_source="tiny")
    exported, _ = export_bundle(bundle)
    model.peft_config["default"].base_model_name_or_path = str(tmp_path / "base")
    model.save_pretrained(str(tmp_path / "run-adapter"))
    kwargs = dict(max_new_tokens=8, temperature=0, device="cpu")
    expected = generate(bundle, "ab", **kwargs)
    assert generate(exported, "ab", **kwargs) == expected
    assert generate(tmp_path / "run-adapter", "ab", **kwargs) == expected


def test_an_answer_streams_token_by_token_and_the_pieces_make_the_whole_text(make_model, monkeypatch):
    """`aios-tui generate` prints an HRM answer as it is sampled: each settled piece as its token
    comes, and the pieces put together are the text sampled without streaming, byte for byte."""
    from aios_tui.engine.generate import Loaded, Sampling
    from aios_tui.engine.hrm import generate as hrm_generate
    from aios_tui.engine.tokenizer import byte_tokenizer

    tokenizer = byte_tokenizer()
    loaded = Loaded(make_model(halt_max_steps=2), tokenizer, hrm=True)
    prompt = loaded.prompt_ids("ab")
    sampled = []  # tokens sampled so far, when each piece arrived
    original = hrm_generate.generate_ids

    def counting(*args, on_token=None, **kwargs):
        def seen(token):
            sampled.append(token)
            on_token(token)
        return original(*args, **kwargs, **({"on_token": seen} if on_token else {}))

    monkeypatch.setattr(hrm_generate, "generate_ids", counting)
    for sampling in (Sampling(max_new_tokens=12, temperature=1.0, seed=5),
                     Sampling(max_new_tokens=12, temperature=0)):
        whole = loaded.sample(prompt, sampling)
        sampled.clear()
        pieces, at = [], []
        streamed = loaded.sample(prompt, sampling, lambda piece: (pieces.append(piece), at.append(len(sampled))))
        assert streamed == whole and "".join(pieces) == whole
        assert len(pieces) > 1 and at[0] < len(sampled)  # the first piece came before the last token


def test_a_temperature_too_small_to_divide_by_picks_the_likeliest_token(make_model):
    from aios_tui.engine.generate import Loaded, Sampling
    from aios_tui.engine.tokenizer import byte_tokenizer

    loaded = Loaded(make_model(halt_max_steps=2), byte_tokenizer(), hrm=True)
    prompt = loaded.prompt_ids("ab")
    greedy = loaded.sample(prompt, Sampling(max_new_tokens=8, temperature=0))
    assert loaded.sample(prompt, Sampling(max_new_tokens=8, temperature=1e-300, seed=1)) == greedy
