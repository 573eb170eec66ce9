-- Session setting for reading envelopes. DuckDB's parallel workers fill a streaming result only
-- up to this many bytes ahead of the client; at the default (~1 MB, about a thousand envelopes)
-- they stall while JavaScript handles a chunk, so the hash and JSON work would not overlap with
-- it. 32 MB is roughly forty thousand envelopes of read-ahead per open reader.
SET streaming_buffer_size = '32MB'
