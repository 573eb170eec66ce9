-- Session setting for reading envelopes. DuckDB's parallel workers fill a streaming result only
-- up to this many bytes ahead of the client, so they keep hashing and building JSON while
-- JavaScript handles a chunk. Measured on a 1M-event view: 32 MB of read-ahead held the process
-- at ~1.5 GB RSS for no gain in rate; 2 MB keeps it near 500 MB at the same rate.
SET streaming_buffer_size = '2MB'
