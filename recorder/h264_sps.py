"""Picture size from an H.264 sequence parameter set (ITU-T H.264 section 7.3.2.1.1).

The Matroska track header needs the picture size before the first frame is written, and
the recorder never decodes, so it reads the few SPS fields that give it.
"""

from __future__ import annotations

from recorder.depacketize import ANNEX_B_START, NAL_SPS

_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


class _Bits:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self._pos >> 3
            if byte >= len(self._data):
                raise ValueError("H.264 SPS is truncated.")
            value = (value << 1) | ((self._data[byte] >> (7 - (self._pos & 7))) & 1)
            self._pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("H.264 SPS has an invalid Exp-Golomb code.")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _unescape(nal: bytes) -> bytes:
    # Remove emulation prevention bytes (00 00 03 -> 00 00).
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def sps_dimensions(sps: bytes) -> tuple[int, int]:
    """(width, height) from an SPS NAL unit (with its one-byte header)."""
    if not sps or sps[0] & 0x1F != NAL_SPS:
        raise ValueError("H.264 NAL unit is not a sequence parameter set.")
    bits = _Bits(_unescape(sps[1:]))
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in _HIGH_PROFILES:
        chroma = bits.ue()
        if chroma == 3:
            bits.u(1)
        bits.ue()
        bits.ue()
        bits.u(1)
        if bits.u(1):  # scaling matrices
            for i in range(12 if chroma == 3 else 8):
                if bits.u(1):
                    last, nxt = 8, 8
                    for _ in range(16 if i < 6 else 64):
                        if nxt:
                            nxt = (last + bits.se() + 256) % 256
                        last = nxt or last
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.u(1)
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.u(1)
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)
    bits.u(1)
    crop = (0, 0, 0, 0)
    if bits.u(1):
        crop = (bits.ue(), bits.ue(), bits.ue(), bits.ue())
    crop_x = 1 if chroma in (0, 3) else 2
    crop_y = (2 - frame_mbs_only) * (2 if chroma == 1 else 1)
    width = width_mbs * 16 - crop_x * (crop[0] + crop[1])
    height = (2 - frame_mbs_only) * height_units * 16 - crop_y * (crop[2] + crop[3])
    return width, height


def access_unit_dimensions(access_unit: bytes) -> tuple[int, int]:
    """(width, height) from the first SPS in an Annex B access unit."""
    for nal in access_unit.split(ANNEX_B_START):
        nal = nal.rstrip(b"\x00")
        if nal and nal[0] & 0x1F == NAL_SPS:
            return sps_dimensions(nal)
    raise ValueError("H.264 keyframe carries no sequence parameter set.")
