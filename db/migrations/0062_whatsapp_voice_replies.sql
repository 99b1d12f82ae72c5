-- Per number (and so per flow it answers with): a voice note is answered with a voice note.
ALTER TABLE whatsapp_numbers ADD COLUMN voice_replies boolean NOT NULL DEFAULT false;
