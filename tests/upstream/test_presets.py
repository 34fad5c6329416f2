import pytest

from serkit.errors import ConfigError
from serkit.upstream import build_upstream
from serkit.upstream.hf import HFConfig
from serkit.upstream.presets import PRESETS, resolve_source

MISSING_HUB_ID = "serkit-tests/no-such-model"  # never on the hub nor in any cache


def test_presets_resolve_to_hub_ids():
    assert resolve_source("wav2vec2-large-robust") == "facebook/wav2vec2-large-robust"
    assert resolve_source("hubert-base") == "facebook/hubert-base-ls960"
    assert resolve_source("whisper-large-v3") == "openai/whisper-large-v3"
    assert all("/" in hub_id for hub_id in PRESETS.values())


def test_directories_and_other_names_pass_through(tmp_path):
    assert resolve_source(str(tmp_path)) == str(tmp_path)
    assert resolve_source(MISSING_HUB_ID) == MISSING_HUB_ID


def test_empty_source_is_a_config_error():
    with pytest.raises(ConfigError, match="upstream.source"):
        resolve_source(None)


@pytest.mark.parametrize("name", ["hf", "whisper", "text"])
def test_unloadable_hub_id_names_the_source_and_suggests_a_local_directory(name):
    with pytest.raises(ConfigError, match=rf"{MISSING_HUB_ID}.*local directory"):
        build_upstream({"name": name, "source": MISSING_HUB_ID})


def test_directory_without_a_model_says_so(tmp_path):
    with pytest.raises(ConfigError, match="lacks the files"):
        build_upstream(HFConfig(source=str(tmp_path)))


def test_unknown_freeze_policy_fails_before_loading_anything():
    with pytest.raises(ConfigError, match="upstream.freeze='some'"):
        build_upstream(HFConfig(source=MISSING_HUB_ID, freeze="some"))
