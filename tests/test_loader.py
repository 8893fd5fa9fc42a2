"""The loader uses libyaml through ruamel.yaml.clib, not the pure-Python parser."""

from __future__ import annotations

from reconciler import loader


def test_the_c_parser_is_in_use():
    from ruamel.yaml.cyaml import CParser  # ImportError here: ruamel.yaml.clib is missing

    assert issubclass(loader._Loader, CParser)
    assert CParser.__module__ == "ruamel.yaml.clib._ruamel_yaml"  # compiled, not Python


def test_large_environments_are_parsed_in_parallel(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "PARALLEL_THRESHOLD_BYTES", 1)
    for index in range(4):
        (tmp_path / f"a{index}.yaml").write_text(
            f'kind: Account\ncustomer_number: "100000{index}"\nname: A{index}\n')
    result = loader.load_environment(tmp_path)
    assert [d.body["customer_number"] for d in result.documents] == [
        "1000000", "1000001", "1000002", "1000003"]
    assert result.documents[2].locate("name").line == 3


def test_a_list_kept_as_positions_only_still_locates_every_field():
    text = ("kind: Tenant\nextensions:\n"
            "  - number: \"100\"\n    name: Anna\n    addons: [voicemail]\n"
            "  - {number: \"101\", name: Ben}\n")
    diagnostics = loader.Diagnostics()
    (body, source), = loader.parse_yaml(text, "t.yaml", diagnostics)
    paths = [("extensions", 0, "name"), ("extensions", 0, "addons", 0), ("extensions", 1),
             ("extensions", 1, "name"), ("extensions", 1, "missing"), ("extensions", 2)]
    before = [loader.locate(body, "t.yaml", path) for path in paths]
    body["extensions"] = loader.KeptPositions(body["extensions"])
    assert type(body["extensions"]) is loader.KeptPositions
    after = [loader.locate(body, "t.yaml", path) for path in paths]
    assert after[0] == before[0] and after[2:] == before[2:]
    assert (after[1].line, after[1].column) == (5, 5)  # the list let go of: its key
    assert [(s.line, s.column) for s in after] == [(4, 5), (5, 5), (6, 5), (6, 21), (6, 5),
                                                   (2, 1)]
