from django.db import migrations

# The audit trail is append-only at the database level: UPDATE and DELETE are refused unless a
# purge sets `dcportal.audit_purge` for its own transaction (SET LOCAL).
FORWARD = """
CREATE FUNCTION dcportal_audit_immutable() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('dcportal.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit events cannot be changed or deleted (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER dcportal_auditevent_immutable
    BEFORE UPDATE OR DELETE ON dcportal_auditevent
    FOR EACH ROW EXECUTE FUNCTION dcportal_audit_immutable();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS dcportal_auditevent_immutable ON dcportal_auditevent;
DROP FUNCTION IF EXISTS dcportal_audit_immutable();
"""


class Migration(migrations.Migration):
    dependencies = [("dcportal", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
