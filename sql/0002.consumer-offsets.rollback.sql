DROP TABLE consumer_offsets;
