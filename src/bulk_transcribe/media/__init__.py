"""Media: yt-dlp downloads, audio decoding and probing, the Whisper model; no engine rules here."""
