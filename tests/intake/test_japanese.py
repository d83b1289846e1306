"""The Japanese fixes: Windows ISO-2022-JP, Shift_JIS as cp932, header decoding.

Byte strings are written out by hand (JIS codes from the JIS X 0208 / CP932
tables) so the tests do not merely run the codec against itself.
"""

from __future__ import annotations

import codecs

import pytest

from mailbot.intake import japanese
from mailbot.intake.japanese import decode, decode_header, jis_to_sjis, sjis_to_jis

# JIS X 0208 codes: ① 0x2D21, ㈱ 0x2D6A (NEC row 13); 髙 0x7C62 (NEC-selected
# IBM row 92); 株 0x3374, 式 0x3C30; テ 0x2546.
CIRCLED_ONE = b"\x1b$B-!\x1b(B"
KABU = b"\x1b$B-j\x1b(B"
TAKA = b"\x1b$B|b\x1b(B"
KABUSHIKI = b"\x1b$B3t<0\x1b(B"


def test_stdlib_cannot_decode_what_outlook_sends():
    # Why this module exists: the standard codec fails on CP932 extensions.
    with pytest.raises(UnicodeDecodeError):
        CIRCLED_ONE.decode("iso2022_jp")


@pytest.mark.parametrize(("raw", "text"), [
    (CIRCLED_ONE, "①"), (KABU, "㈱"), (TAKA, "髙"), (KABUSHIKI, "株式"),
    (b"abc\x1b$B%F\x1b(Bdef", "abcテdef"),
])
def test_iso2022jp_with_cp932_extensions(raw, text):
    assert decode(raw, "ISO-2022-JP") == text


def test_half_width_kana_escape_and_shift_out():
    assert decode(b"\x1b(I1236\x1b(B", "iso-2022-jp") == "ｱｲｳｶ"  # ESC ( I
    assert decode(b"x\x0e1\x0fy", "iso-2022-jp") == "xｱy"  # SO/SI (CP50222)


@pytest.mark.parametrize("label", ["iso-2022-jp", "ISO-2022-JP", "csISO2022JP", "cp50220", "CP50221"])
def test_labels_resolve_to_the_windows_codec(label):
    assert japanese.codec_name(label) == japanese.CODEC
    assert decode(KABU, label) == "㈱"


def test_codec_registered_for_windows_names():
    assert codecs.lookup("cp50220").name == japanese.CODEC
    assert KABU.decode("cp50221") == "㈱"


@pytest.mark.parametrize("label", ["Shift_JIS", "shift-jis", "x-sjis", "Windows-31J"])
def test_shift_jis_labels_mean_cp932(label):
    assert japanese.codec_name(label) == "cp932"
    assert decode(b"\x87\x40\x87\x8a", label) == "①㈱"  # cp932 codes of ① ㈱


def test_jis_sjis_transcoding_round_trips_all_cp932_pairs():
    checked = 0
    for lead in [*range(0x81, 0xA0), *range(0xE0, 0xF0)]:
        for trail in [*range(0x40, 0x7F), *range(0x80, 0xFD)]:
            try:
                bytes([lead, trail]).decode("cp932")
            except UnicodeDecodeError:
                continue
            assert jis_to_sjis(*sjis_to_jis(lead, trail)) == (lead, trail)
            checked += 1
    assert checked > 7000


def test_encoder_writes_jis_that_the_decoder_reads_back():
    text = "株式会社①㈱髙橋 ｱｲｳ abc"
    raw = text.encode("cp50221")
    assert raw.startswith(b"\x1b$B") and b"\x1b(I123\x1b(B" in raw
    assert b"-!" in raw and b"|b" in raw  # ① and 髙 as their JIS codes
    assert decode(raw, "iso-2022-jp") == text


def test_bad_bytes_follow_the_error_handler():
    with pytest.raises(UnicodeDecodeError):
        decode(b"\x1b$B-", "iso-2022-jp")
    assert decode(b"\x1b$B-", "iso-2022-jp", "replace") == "\ufffd"


def test_adjacent_encoded_words_split_mid_character_are_joined():
    # "①㈱" in JIS is ESC $ B - ! - j ESC ( B; split between the two bytes of ㈱.
    first, second = b"\x1b$B-!-", b"j\x1b(B"
    value = f"=?ISO-2022-JP?B?{_b64(first)}?=\r\n =?ISO-2022-JP?B?{_b64(second)}?="
    assert decode_header(value) == "①㈱"


def test_header_mixes_plain_text_and_words_of_different_charsets():
    value = "Re: =?UTF-8?B?55Sz6KuL?= =?ISO-2022-JP?B?" + _b64(TAKA) + "?= end"
    assert decode_header(value) == "Re: 申請髙 end"


def test_q_encoded_word_and_raw_8bit_header_bytes():
    assert decode_header("=?Shift_JIS?Q?=87=40?=") == "①"
    raw_sjis = b"\x87\x40".decode("ascii", "surrogateescape")  # as email's parser keeps it
    assert decode_header(raw_sjis) == "①"


def test_unlabelled_bytes_are_sniffed():
    assert japanese.sniff_decode(KABU) == "㈱"
    assert japanese.sniff_decode("髙".encode()) == "髙"
    assert japanese.sniff_decode(b"\x87\x40") == "①"


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def test_junk_charset_labels_fall_back_to_sniffing():
    with pytest.raises(LookupError):
        decode(b"x", "utf\x00-8")
    assert japanese.decode_bytes("①".encode(), "no-such-charset") == "①"
    assert japanese.decode_bytes(b"\x87\x40", "utf\x00-8") == "①"


def test_unlabelled_euc_jp_is_told_from_cp932():
    # EUC-JP bytes also decode as cp932, but as half-width kana and user-area
    # characters; the decoding that reads as Japanese prose wins.
    text = "株式会社です。申請書について"
    assert japanese.sniff_decode(text.encode("euc_jp")) == text
    assert japanese.sniff_decode("株式会社①です".encode("cp932")) == "株式会社①です"


@pytest.mark.parametrize(("html", "label"), [
    (b'<html><head><meta charset="Shift_JIS"></head>', "Shift_JIS"),
    (b"<META HTTP-EQUIV='Content-Type' CONTENT='text/html; charset=euc-jp'>", "euc-jp"),
    (b'<meta http-equiv="Content-Type" content="text/html; charset=iso-2022-jp">', "iso-2022-jp"),
    (b"<html><body>no meta</body></html>", None),
])
def test_meta_charset_is_read_from_the_html(html, label):
    assert japanese.meta_charset(html) == label
