-- planbound's application role, with least privilege: it cannot rewrite history.
--
-- Run as the owner of planbound's database, after the migrations (`planbound db init` or
-- the `seed` service), and again after a migration adds a domain table (the script is
-- idempotent):
--
--   psql "postgresql://postgres@host/planbound" -v ON_ERROR_STOP=1 -f deploy/roles.sql
--   psql "postgresql://postgres@host/planbound" -c "ALTER ROLE planbound_app PASSWORD '...'"
--
-- then run planbound (CLI, API workers) with
-- PLANBOUND_DATABASE_URI=postgresql://planbound_app:...@host/planbound. Migrations stay the
-- owner's job: the application role creates nothing and only checks they are applied.
--
-- What planbound_app may do (planbound's tables are in schema planbound, the checkpointer's
-- in public):
--
--   audit_log, approvals   SELECT, INSERT: append-only, no UPDATE, no DELETE
--   ledger                 SELECT; INSERT of the call's columns; UPDATE of the outcome
--                          columns only; no DELETE. The trigger below also refuses any
--                          change but started -> started/succeeded/failed and
--                          succeeded -> compensated, and a row born anything but started.
--   review_claims          SELECT, INSERT, UPDATE, DELETE (a claim is taken over, given back)
--   schema_migrations      SELECT
--   the domain's tables    SELECT, INSERT, UPDATE, DELETE (every other table of planbound)
--   the checkpointer's     SELECT, INSERT, UPDATE, DELETE (pruning deletes checkpoints);
--                          checkpoint_migrations SELECT
--
-- The trigger binds every role, the owner too (who can still drop it, or edit the journal
-- directly: `planbound audit DECISION_ID` detects that through the journal's hash chains).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'planbound_app') THEN
        CREATE ROLE planbound_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA planbound, public TO planbound_app;

-- planbound's own tables.
GRANT SELECT ON planbound.schema_migrations TO planbound_app;
GRANT SELECT, INSERT ON planbound.audit_log, planbound.approvals TO planbound_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON planbound.review_claims TO planbound_app;
GRANT SELECT ON planbound.ledger TO planbound_app;
GRANT INSERT (decision_id, step_id, tool, args, status, started_at)
    ON planbound.ledger TO planbound_app;
GRANT UPDATE (status, attempts, output, output_hash, changes, error, finished_at)
    ON planbound.ledger TO planbound_app;

-- A ledger row records one call; once it has an outcome, that outcome stands.
CREATE OR REPLACE FUNCTION planbound.ledger_keeps_outcomes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'started' OR NEW.output IS NOT NULL OR NEW.output_hash IS NOT NULL
            OR NEW.changes IS NOT NULL OR NEW.error IS NOT NULL OR NEW.finished_at IS NOT NULL
        THEN
            RAISE EXCEPTION 'ledger row %/%: a row is recorded started, before its call',
                NEW.decision_id, NEW.step_id
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF (NEW.decision_id, NEW.step_id, NEW.tool, NEW.args, NEW.started_at)
        IS DISTINCT FROM (OLD.decision_id, OLD.step_id, OLD.tool, OLD.args, OLD.started_at)
    THEN
        RAISE EXCEPTION 'ledger row %/%: the call it records cannot change',
            OLD.decision_id, OLD.step_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.status = 'started' AND NEW.status IN ('started', 'succeeded', 'failed') THEN
        RETURN NEW;
    END IF;
    IF OLD.status = 'succeeded' AND NEW.status = 'compensated'
        AND (NEW.attempts, NEW.output, NEW.output_hash, NEW.changes, NEW.error, NEW.finished_at)
            IS NOT DISTINCT FROM
            (OLD.attempts, OLD.output, OLD.output_hash, OLD.changes, OLD.error, OLD.finished_at)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'ledger row %/%: % -> % would rewrite a finished outcome',
        OLD.decision_id, OLD.step_id, OLD.status, NEW.status
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;

DROP TRIGGER IF EXISTS ledger_keeps_outcomes ON planbound.ledger;
CREATE TRIGGER ledger_keeps_outcomes BEFORE INSERT OR UPDATE ON planbound.ledger
    FOR EACH ROW EXECUTE FUNCTION planbound.ledger_keeps_outcomes();

-- The domain's tables and the checkpointer's.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT schemaname, tablename FROM pg_tables
        WHERE (schemaname = 'planbound' AND tablename NOT IN
                  ('schema_migrations', 'ledger', 'approvals', 'review_claims', 'audit_log'))
           OR (schemaname = 'public'
               AND tablename IN ('checkpoints', 'checkpoint_blobs', 'checkpoint_writes'))
    LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I.%I TO planbound_app',
                       t.schemaname, t.tablename);
    END LOOP;
    IF to_regclass('public.checkpoint_migrations') IS NOT NULL THEN
        GRANT SELECT ON public.checkpoint_migrations TO planbound_app;
    END IF;
END
$$;
