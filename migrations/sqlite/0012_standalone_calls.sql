-- Calls outside a conversation (the OpenAI-compatible API; later comparisons and sweeps) keep their answer on
-- the record itself, with any tool calls; every call also counts the visible answer's tokens apart from the
-- billed count (which includes the end-of-sequence token and hidden reasoning).
ALTER TABLE calls ADD COLUMN response_text TEXT;
ALTER TABLE calls ADD COLUMN tool_calls TEXT;            -- JSON array, as the API returns them
ALTER TABLE calls ADD COLUMN visible_output_tokens BIGINT;
