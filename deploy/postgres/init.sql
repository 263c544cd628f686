-- One database per service, and a user per service that can reach only its
-- own (docker-compose.yml runs this once, on an empty Postgres volume).
-- The passwords are for a local deployment; change them for anything else.
CREATE USER catalogue WITH PASSWORD 'catalogue';
CREATE USER inventory WITH PASSWORD 'inventory';
CREATE USER orders WITH PASSWORD 'orders';
CREATE USER orchestrator WITH PASSWORD 'orchestrator';
CREATE USER audit WITH PASSWORD 'audit';

CREATE DATABASE catalogue OWNER catalogue;
CREATE DATABASE inventory OWNER inventory;
CREATE DATABASE orders OWNER orders;
CREATE DATABASE orchestrator OWNER orchestrator;
CREATE DATABASE audit OWNER audit;

REVOKE CONNECT ON DATABASE catalogue, inventory, orders, orchestrator, audit FROM PUBLIC;
GRANT CONNECT ON DATABASE catalogue TO catalogue;
GRANT CONNECT ON DATABASE inventory TO inventory;
GRANT CONNECT ON DATABASE orders TO orders;
GRANT CONNECT ON DATABASE orchestrator TO orchestrator;
GRANT CONNECT ON DATABASE audit TO audit;
