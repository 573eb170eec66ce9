-- Session setting for reading envelopes. DuckDB's workers fill a streaming result only up to this
-- many bytes ahead of the client, so they keep hashing and building JSON while JavaScript handles
-- a chunk. DuckDB counts only a chunk's fixed-width part against it (16 bytes per string), not the
-- string data: each 2048-envelope chunk holds ~2 MB of text, so 2 MB here buffered ~20 of them.
-- Measured on a 1M-event view: 32 MB held the process at ~1.5 GB RSS, 2 MB at ~500 MB, 256 kB
-- (about two chunks) ~90 MB less again, at a DuckDB rate still ~5x what the gate takes.
SET streaming_buffer_size = '256kB'
