"""`clm erase` (GDPR Art. 17, CONTRACT section 1) on a small hand-made landing set: after
erasing Ann by any spelling of her email (through the console script, as a user runs it),
no table and no byte of the warehouse file or of the serving snapshot holds her data, other
persons are intact, her rows stay out of later loads, and the suppression hashes cannot be
confirmed by guessing her address."""
from __future__ import annotations

import hashlib
import hmac
import json

import duckdb
import pytest

from orchestration.cli import main
from tests.pipeline import clm, run_clm
from tests.pipeline import query as q

VARS = '{"as_of_date": "2024-12-31"}'
ANN = "ann.lee"  # what must disappear (her emails are ann.lee@example.com in several spellings)


def write_landing(landing):
    files = {
        "crm_contacts/contacts.csv":
            "contact_id,created_at,email,phone,first_name,last_name,country,referred_by_email\n"
            "C1,2024-01-05T10:00:00Z,Ann.Lee@Example.com,+49 151 23456789,Annegret,Leeuwenhoek,DE,\n"
            "C2,2024-02-01T10:00:00Z,bob@example.com,,Bob,Stone,DE,ann.lee@example.com\n"
            "C3,2024-02-02T10:00:00Z,ANN.LEE@example.com ,,Annegret,Leeuwenhoek,DE,\n",
        "crm_deals/deals.csv":
            "deal_id,contact_id,created_at,deal_stage\n"
            "D1,C1,2024-01-06T10:00:00Z,open\n"
            "D2,C2,2024-02-03T10:00:00Z,won\n",
        "orders/orders.csv":
            "order_id,ordered_at,total_amount,email,customer_id\n"
            "O1,2024-01-10T10:00:00Z,50,ann.lee@example.com,U1\n"
            "O2,2024-03-10T10:00:00Z,20,,U1\n"  # linked to Ann only through her shop account
            "O3,2024-02-10T10:00:00Z,30,bob@example.com,\n",
        "surveys/surveys.csv":
            "response_id,responded_at,survey_type,score,email\n"
            "R1,2024-04-01T10:00:00Z,nps,10,ann.lee@example.com\n"
            "R2,2024-04-02T10:00:00Z,nps,7,bob@example.com\n"
            ",2024-04-03T10:00:00Z,ces,5,Ann.Lee@example.com\n",  # no response id
    }
    events = [
        {"event_at": "2024-01-09T09:00:00Z", "anonymous_id": "A1", "event_name": "page_view"},
        {"event_at": "2024-01-09T09:05:00Z", "anonymous_id": "A1", "event_name": "login",
         "email": "ann.lee@example.com", "user_id": "U1"},
        # a shared device: Ann and Carol both logged in on it
        {"event_at": "2024-01-20T09:00:00Z", "anonymous_id": "A2", "event_name": "login",
         "email": "ann.lee@example.com"},
        {"event_at": "2024-01-21T09:00:00Z", "anonymous_id": "A2", "event_name": "login",
         "email": "carol@example.com"},
        {"event_at": "2024-02-01T09:00:00Z", "anonymous_id": "A3", "event_name": "sign_up",
         "email": "bob@example.com"},
    ]
    files["web_events/events.ndjson"] = "".join(json.dumps(e) + "\n" for e in events)
    for rel, text in files.items():
        path = landing / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


# what of Ann a database file's bytes must not hold after the erasure (as typed and as stored)
ANN_BYTES = (b"ann.lee@example.com", b"Ann.Lee@Example.com", b"ANN.LEE@example.com", b"Annegret", b"Leeuwenhoek",
             b"23456789")


def bytes_found(path) -> list[bytes]:
    data = path.read_bytes()
    return [needle for needle in ANN_BYTES if needle in data]


def mentions(db, needle: str) -> dict[str, int]:
    """Rows of every table of every schema whose text contains needle (any case)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
        found = {}
        for schema, table in tables:
            n = con.execute(f"""SELECT count(*) FROM (SELECT concat_ws('|', *COLUMNS(*)) AS t
                                FROM "{schema}"."{table}") WHERE t ILIKE '%{needle}%'""").fetchone()[0]
            if n:
                found[f"{schema}.{table}"] = n
        return found
    finally:
        con.close()


@pytest.fixture(scope="module")
def erased(tmp_path_factory):
    root = tmp_path_factory.mktemp("erase")
    write_landing(root / "landing")
    assert run_clm(root, VARS) == 0
    db = root / "warehouse" / "clm.duckdb"
    before = {
        "persons": q(db, "SELECT count(*) FROM marts.dim_customers")[0][0],
        "ann": q(db, f"SELECT customer_id FROM marts.dim_customers WHERE email = '{ANN}@example.com'")[0][0],
        "mentions": mentions(db, ANN),
        "bytes": bytes_found(db),
    }
    mp = pytest.MonkeyPatch()
    mp.setenv("CLM_LANDING_DIR", str(root / "landing"))
    mp.setenv("CLM_WAREHOUSE_DIR", str(root / "warehouse"))
    mp.setenv("CLM_VARS", VARS)
    yield {"root": root, "db": db, "serving": root / "warehouse" / "serving.duckdb", "before": before, "mp": mp}
    mp.undo()


def test_erase_by_email_removes_the_person_everywhere(erased):
    db, before = erased["db"], erased["before"]
    assert before["mentions"]  # she was there: raw, staging, marts, the registry ...
    assert b"ann.lee@example.com" in before["bytes"] and b"Leeuwenhoek" in before["bytes"]  # and in the file's bytes
    done = clm("erase", "--email", "  ANN.Lee@EXAMPLE.com ", root=erased["root"], vars_json=VARS)
    assert done.returncode == 0, done.stderr
    assert before["ann"] in done.stdout
    assert ANN not in (done.stdout + done.stderr).lower()  # never printed
    assert "crm_contacts 2" in done.stdout and "orders 2" in done.stdout and "surveys 2" in done.stdout
    assert mentions(db, ANN) == {}
    assert mentions(erased["serving"], ANN) == {}
    # no byte of either file holds her email, phone or names (freed blocks included)
    assert bytes_found(db) == [] and bytes_found(erased["serving"]) == []
    # suppression hashes are keyed: her address's plain sha256 is not there; the HMAC with the
    # key beside the warehouse is, and the key was never printed
    key_file = erased["root"] / "warehouse" / "erasure.key"
    key = bytes.fromhex(key_file.read_text())
    assert key_file.stat().st_mode & 0o777 == 0o600
    stored = {r[0] for r in q(db, "SELECT value_hash FROM raw._erasures WHERE kind = 'email'")}
    assert hashlib.sha256(b"ann.lee@example.com").hexdigest() not in stored
    assert hmac.new(key, b"ann.lee@example.com", hashlib.sha256).hexdigest() in stored
    assert key.hex() not in done.stdout + done.stderr
    assert q(db, "SELECT count(*) FROM marts.dim_customers")[0][0] == before["persons"] - 1
    assert q(db, f"SELECT count(*) FROM marts.customer_identities WHERE customer_id = '{before['ann']}'") == [(0,)]
    assert q(db, "SELECT count(*) FROM raw.orders WHERE trim(order_id) IN ('O1', 'O2')") == [(0,)]
    assert q(db, "SELECT count(*) FROM raw.crm_deals WHERE deal_id = 'D1'") == [(0,)]
    # other persons are intact; the shared device keeps its events without her email
    assert q(db, "SELECT referred_by_email FROM raw.crm_contacts WHERE contact_id = 'C2'") == [(None,)]
    assert q(db, "SELECT count(*), count(email) FROM raw.web_events WHERE anonymous_id = 'A2'") == [(2, 1)]
    assert q(db, "SELECT count(*) FROM marts.fct_orders WHERE order_id = 'O3'") == [(1,)]
    assert q(db, "SELECT count(*) FROM raw._erasures WHERE customer_id = ?".replace("?", f"'{before['ann']}'")
             )[0][0] >= 4


def test_an_erased_person_stays_out_of_later_loads(erased):
    db = erased["db"]
    again = erased["root"] / "landing" / "crm_contacts" / "contacts_again.csv"
    again.write_text("contact_id,created_at,email,first_name\n"
                     "C9,2024-05-01T10:00:00Z,Ann.Lee@example.com,Ann\n"
                     "C1,2024-05-01T10:00:00Z,,Ann\n"
                     "C7,2024-05-02T10:00:00Z,dan@example.com,Dan\n")
    try:
        assert main(["run"]) == 0
        assert mentions(db, ANN) == {}
        assert q(db, "SELECT contact_id, _row_number FROM raw.crm_contacts WHERE contact_id IN ('C1', 'C7', 'C9') "
                     "ORDER BY 1") == [("C7", 4)]  # lines 2 and 3 were erased
        assert q(db, "SELECT rows_loaded, rows_rejected, rows_erased FROM marts.fct_source_loads "
                     "WHERE file_name LIKE '%contacts_again.csv'") == [(1, 0, 2)]
    finally:
        again.unlink()


def test_erase_of_an_unknown_person_fails_without_echoing_it(erased, capsys):
    capsys.readouterr()
    assert main(["erase", "--email", "nobody.special@example.com"]) == 1
    err = capsys.readouterr().err
    assert "no person matches the given email" in err and "nobody.special" not in err
    assert main(["erase", "--customer-id", "cus_doesnotexist"]) == 1


def test_erase_by_customer_id(erased, capsys):
    db = erased["db"]
    bob = q(db, "SELECT customer_id FROM marts.dim_customers WHERE email = 'bob@example.com'")[0][0]
    capsys.readouterr()
    assert main(["erase", "--customer-id", bob]) == 0
    assert "rewritten so that no freed block keeps their data" in capsys.readouterr().out
    assert q(db, "SELECT count(*) FROM raw.orders WHERE order_id = 'O3'") == [(0,)]
    assert mentions(db, "bob@example.com") == {}
    assert main(["run"]) == 0
    assert mentions(db, "bob@example.com") == {}


def test_the_keyed_hash_in_sql_is_the_one_python_stores():
    from pipelines.privacy.erasure import HMAC_MACRO, install_hmac_macro, keyed_hash

    con = duckdb.connect()
    for key in (bytes(range(32)), b"k" * 80):  # a key longer than the block is hashed first
        install_hmac_macro(con, key)
        for value in ("ann.lee@example.com", "jürgen@bücher.de", "", "x" * 200):
            assert con.execute(f"SELECT {HMAC_MACRO}(?)", [value]).fetchone()[0] == keyed_hash(key, value)
    assert con.execute(f"SELECT {HMAC_MACRO}(NULL)").fetchone()[0] is None
