"""Model ids that contain colons (fine-tuned OpenAI models, Ollama tags) survive spec parsing and the
endpoint-free form that run.json stores."""
import pytest

from igft.llm.factory import parse_spec, redacted_spec


@pytest.mark.parametrize("spec, model_id, base_url", [
    ("openai:ft:gpt-4o-mini:org::id", "ft:gpt-4o-mini:org::id", None),
    ("openai-compatible:http://localhost:11434/v1:llama3.1:8b", "llama3.1:8b", "http://localhost:11434/v1"),
    ("openai-compatible:https://gw.example:8443/v1:ft:gpt-4o-mini:org::id", "ft:gpt-4o-mini:org::id",
     "https://gw.example:8443/v1"),
])
def test_model_ids_with_colons_parse_whole(spec, model_id, base_url):
    parsed = parse_spec(spec)
    assert (parsed.model_id, parsed.base_url) == (model_id, base_url)
    # run.json keeps the spec without its endpoint; reading it back gives the same model id.
    stored = redacted_spec(spec)
    assert "localhost" not in stored and "gw.example" not in stored
    assert parse_spec(stored).model_id == model_id
