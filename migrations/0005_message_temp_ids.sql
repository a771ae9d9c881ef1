-- A message's tempId (the client's id for it) is kept, unique per user: a
-- batch that names a tempId already stored maps it to the stored message
-- instead of inserting it again. So the worker may merge queued batches into
-- one request, or send a batch again after a lost answer, under any
-- Idempotency-Key, and each message is stored once. Older rows have none.
ALTER TABLE chat_messages ADD COLUMN temp_id TEXT;
CREATE UNIQUE INDEX chat_messages_by_temp_id ON chat_messages (user_id, temp_id);
