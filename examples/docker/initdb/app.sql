-- Run once by the postgres image when a shard's data volume is empty: the application's role and database.
CREATE ROLE app LOGIN PASSWORD 'app';
CREATE DATABASE app OWNER app;
