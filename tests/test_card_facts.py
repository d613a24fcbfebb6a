"""CardFacts: the facts a card shows travel from the stage that records them to the release card."""

import json

from huggingface_hub import DatasetCard

from imaginarium.card_facts import CardFacts
from imaginarium.schemas.records import arrow_schema
from imaginarium.stage import write_stage


def test_facts_read_from_reports_and_manifest_and_written_back(tmp_path):
    quality = {"trials": 4, "with_ok_call": 0.5}
    write_stage(tmp_path / "s", "filter", {}, {}, [], schema=arrow_schema("episode_trial"),
                files={"quality.json": json.dumps(quality)},
                extra={"funnel": {"input": 4}, "judge_model": "j", "response_sources": {"real": 3, "simulated": 1},
                       "models": [{"id": "m", "revision": "main", "role": "explorer"}], "run": {"ignored": 1}})
    facts = CardFacts.read(tmp_path / "s")
    assert facts == CardFacts(quality=quality, funnel={"input": 4}, judge_model="j",
                              response_sources={"real": 3, "simulated": 1},
                              models=[{"id": "m", "revision": "main", "role": "explorer"}])
    assert facts.simulated_share == 0.25
    carried = facts.carried()
    assert carried.response_sources == {} and carried.simulated_share is None and carried.quality == quality
    assert set(carried.extra()) == {"funnel", "judge_model", "models"}
    assert set(carried.files()) == {"quality.json", "funnel.json"}
    assert json.loads(carried.files()["quality.json"]) == quality


def test_a_directory_without_facts_has_none(tmp_path):
    assert CardFacts.read(None) == CardFacts()
    write_stage(tmp_path / "s", "explore", {}, {}, [], schema=arrow_schema("episode_trial"))
    facts = CardFacts.read(tmp_path / "s")
    assert facts == CardFacts() and facts.extra() == {} and facts.files() == {}


def test_the_card_front_matter_is_dataset_card_data(tmp_path):
    from fixtures_release import make_sft_stage, sft_rows

    from imaginarium.hub_cards.release import build_release

    make_sft_stage(tmp_path / "sft", sft_rows(3))
    build_release([tmp_path / "sft"], tmp_path / "r", name="toy", version="1.0.0")
    card = DatasetCard.load(tmp_path / "r" / "README.md")
    assert card.data.pretty_name == "toy" and card.data.license
    assert card.data.configs == [{"config_name": "sft", "default": True,
                                  "data_files": [{"split": "train", "path": "data/sft/train-*"}]}]
    assert card.data.dataset_info[0]["splits"][0]["num_examples"] == 3
    assert "## Filter funnel of `sft`" in card.text  # the fixture's manifest records a funnel
