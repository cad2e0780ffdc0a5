"""The HTTP event models are generated from, and must agree with, the event catalogue."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from domain.catalogue import EVENT_TYPES, field_specs
from infra.http.errors import field_path, validation_error
from infra.http.schemas import DATA_MODELS, EVENT_MODELS, IdentityIn, WireEventIn
from services.personal_data import IDENTITY_FIELDS
from services.wire import WIRE_FIELDS


def test_models_cover_exactly_the_catalogue_types() -> None:
    assert set(EVENT_MODELS) == set(EVENT_TYPES) == set(DATA_MODELS)
    union = typing.get_args(typing.get_args(WireEventIn)[0])
    assert {m.model_fields["type"].annotation.__args__[0] for m in union} == set(EVENT_TYPES)


@pytest.mark.parametrize("wire_type", sorted(EVENT_TYPES))
def test_data_model_fields_and_required_ness_match_the_catalogue(wire_type: str) -> None:
    specs = field_specs(wire_type)  # corrections and withdrawals carry no common field
    fields = DATA_MODELS[wire_type].model_fields
    assert set(fields) == set(specs)
    for name, spec in specs.items():
        assert fields[name].is_required() == spec.required, name
        assert fields[name].description.startswith(spec.title_vi), name
        if spec.kind == "enum":
            schema = DATA_MODELS[wire_type].model_json_schema()["properties"][name]
            choices = schema.get("enum") or next(s["enum"] for s in schema["anyOf"] if "enum" in s)
            assert tuple(choices) == spec.choices


@pytest.mark.parametrize("wire_type", sorted(EVENT_TYPES))
def test_envelope_has_the_wire_fields(wire_type: str) -> None:
    assert tuple(EVENT_MODELS[wire_type].model_fields) == WIRE_FIELDS
    assert EVENT_MODELS[wire_type].model_config["extra"] == "forbid"
    assert DATA_MODELS[wire_type].model_config["extra"] == "forbid"


def test_identity_model_has_the_vault_fields() -> None:
    assert tuple(IdentityIn.model_fields) == IDENTITY_FIELDS


def test_validation_errors_name_the_wire_field_path() -> None:
    model = EVENT_MODELS["REQUEST_TRANSFERRED"]
    with pytest.raises(ValidationError) as caught:
        model.model_validate(
            {
                "event_id": "e",
                "case_id": "c",
                "type": "REQUEST_TRANSFERRED",
                "agency_id": "a",
                "occurred_at": "2026-01-01T00:00:00Z",
                "data": {},
            }
        )
    error = validation_error(caught.value.errors())
    assert (error.code, error.field) == ("FIELD_REQUIRED", "data.centre_id")
    assert field_path(("body", "AID_ASSIGNED", "data", "provider_id")) == "data.provider_id"
    assert field_path(("body", 12)) == "$"
    assert field_path(("query", "at")) == "at"
