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
