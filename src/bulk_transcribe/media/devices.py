"""What accelerators this process can use, asked cheaply (CTranslate2 alone, without faster-whisper's imports)."""

from __future__ import annotations


def cuda_devices() -> int:
    """The CUDA devices CTranslate2 can use here (0 without a GPU, or without the CUDA libraries it loads)."""
    import ctranslate2

    try:
        return ctranslate2.get_cuda_device_count()
    except Exception:  # noqa: BLE001 — a broken CUDA install reads as none; the device check then says why
        return 0
