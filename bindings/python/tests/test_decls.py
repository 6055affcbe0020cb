"""The generated declarations (bindings/gen-decls.py) follow bindings/c/moltlink.h: the check
passes on the committed files, fails when the header changes, and a header with functions the
bindings do not use yet still loads."""

import ctypes
import importlib.util
import subprocess
import sys

from moltlink import ErrorCode, Kind, _decls, _ffi

from conftest import REPO

GEN = REPO / "bindings" / "gen-decls.py"
HEADER = REPO / "bindings" / "c" / "moltlink.h"
# Declarations later work may add (new handle, struct, callbacks, owned string), shared with the
# Node test; none of its functions is in the real library.
EXTENDED = REPO / "bindings" / "fixtures" / "extended-header.h"


def gen(*args):
    return subprocess.run([sys.executable, str(GEN), *map(str, args)], capture_output=True, text=True)


def test_committed_declarations_follow_the_header():
    r = gen("--check")
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_fails_when_an_argument_type_changes(tmp_path):
    old = "int32_t ml_chats_handle_response(struct MlChats *handle,\n                                 uint64_t id,\n                                 uint16_t status,"
    text = HEADER.read_text()
    assert old in text
    mutated = tmp_path / "moltlink.h"
    mutated.write_text(text.replace(old, old.replace("uint16_t status", "uint32_t status")))
    r = gen("--check", "--header", mutated)
    assert r.returncode == 1
    # The diff names the drifted function in both bindings.
    assert '-    "ml_chats_handle_response": (c_int32, [c_void_p, c_uint64, c_uint16,' in r.stdout
    assert '+    "ml_chats_handle_response": (c_int32, [c_void_p, c_uint64, c_uint32,' in r.stdout
    assert "+  ml_chats_handle_response: 'int32_t ml_chats_handle_response(MlChats *handle, uint64_t id, uint32_t status," in r.stdout


def test_check_fails_when_a_struct_field_changes(tmp_path):
    text = HEADER.read_text()
    mutated = tmp_path / "moltlink.h"
    mutated.write_text(text.replace("    size_t meta_len;", "    uint32_t meta_len;", 1))
    r = gen("--check", "--header", mutated)
    assert r.returncode == 1
    assert '+        ("meta_len", c_uint32),' in r.stdout


def test_an_unknown_construct_is_an_error(tmp_path):
    mutated = tmp_path / "moltlink.h"
    mutated.write_text(HEADER.read_text().replace("#endif  /* MOLTLINK_H */", "union MlU { int a; };\n#endif"))
    r = gen("--check", "--header", mutated)
    assert r.returncode == 2 and "unsupported declaration" in r.stderr


def test_new_functions_and_types_are_declared_and_skipped_when_absent(tmp_path):
    """What other work will do: add functions with a new struct, callback and owned string."""
    extra = "\n" + EXTENDED.read_text()
    mutated = tmp_path / "moltlink.h"
    mutated.write_text(HEADER.read_text().replace("\n#endif  /* MOLTLINK_H */", extra))
    r = gen("--header", mutated, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    spec = importlib.util.spec_from_file_location("decls_probe", tmp_path / "_decls.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    assert probe.MlProbePart._fields_[0][1] == ctypes.c_uint8 * 4
    restype, argtypes = probe.FUNCTIONS["ml_probe_render"]
    assert restype is ctypes.c_void_p  # owned string: keep the pointer to free it
    assert argtypes[1] is probe.ml_probe_render_each
    assert probe.FUNCTIONS["ml_probe_new"][1][2] is probe.MlProbeLog
    assert probe.FUNCTIONS["ml_string_free"] == (None, [ctypes.c_void_p])  # takes the returned address
    # The real library lacks ml_probe_*: declare skips them and still declares the rest.
    lib = probe.declare(ctypes.CDLL(str(_ffi.find_library())))
    assert lib.ml_chats_poll.argtypes[1] is ctypes.POINTER(probe.MlOutput)
    js = (tmp_path / "decls.js").read_text()
    assert "ml_probe_render: 'void *ml_probe_render(const MlProbe *handle, ml_probe_render_each *each)'" in js
    assert "tag: koffi.array('uint8_t', 4)," in js
    assert "ml_probe_new: 'int32_t ml_probe_new(const MlProbePart *parts, size_t n, MlProbeLog *log, _Out_ MlProbe **out)'" in js
    assert "ml_string_free: 'void ml_string_free(void *s)'" in js


def test_wrapper_enums_agree_with_the_header():
    consts = {k: v for k, v in vars(_decls).items() if k.startswith("ML_")}
    kinds = {k[len("ML_OUTPUT_") :]: v for k, v in consts.items() if k.startswith("ML_OUTPUT_")}
    assert {m.name: m.value for m in Kind} == kinds
    for code in ErrorCode:
        assert consts[f"ML_{code.name}"] == code.value


def test_static_strings_are_read_from_pointers():
    assert _ffi.code_name(ErrorCode.BUFFER_TOO_SMALL) == "BUFFER_TOO_SMALL"
    import moltlink

    assert moltlink.version().count(".") == 2
