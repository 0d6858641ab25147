"""What a user's own code meets: the pytest recipe of pgqueue.testing run as a user's suite,
and the warning for a task defined in a script run directly."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.helpers import cli_env

TASKS = '''
import pgqueue

app = pgqueue.App()

@app.task
def send_welcome(email: str) -> str:
    return f"welcome {email}"

def signup(email: str) -> None:
    send_welcome.defer(email)
'''

CONFTEST = '''
import os

import pytest

from myproject.tasks import app

pytest_plugins = ["pgqueue.testing"]

@pytest.fixture(scope="session")
def pgqueue_app():
    app.dsn = os.environ["TEST_DATABASE_URL"]
    return app
'''

TESTS = '''
from myproject.tasks import send_welcome, signup

def test_signup_sends_a_welcome(pgqueue_tester):
    signup("ada@example.com")
    pgqueue_tester.assert_enqueued(send_welcome, args=["ada@example.com"])
    assert pgqueue_tester.run_jobs() == {"succeeded": 1}
    pgqueue_tester.refute_enqueued(send_welcome)

def test_each_test_starts_with_no_job(pgqueue_tester):
    pgqueue_tester.refute_enqueued(send_welcome)

def test_a_wrong_expectation_fails_and_says_what_is_there(pgqueue_tester):
    signup("bob@example.com")
    pgqueue_tester.assert_enqueued(send_welcome, args=["eve@example.com"])
'''


def test_the_documented_pytest_recipe_runs_as_a_users_suite(tmp_path: Path,
                                                            empty_dsn: str) -> None:
    (tmp_path / "myproject").mkdir()
    (tmp_path / "myproject" / "__init__.py").write_text("")
    (tmp_path / "myproject" / "tasks.py").write_text(TASKS)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_signup.py").write_text(TESTS)
    env = cli_env(None, TEST_DATABASE_URL=empty_dsn)  # unmigrated: the plugin migrates it
    env.pop("PYTHONPATH")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-p", "no:randomly", str(tmp_path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert "1 failed, 2 passed" in result.stdout, result.stdout + result.stderr
    assert ("expected a job of myproject.tasks.send_welcome with args=['eve@example.com'], "
            "found 0") in result.stdout
    assert "args=['bob@example.com']" in result.stdout


def test_a_task_in_a_script_run_directly_warns_at_definition(tmp_path: Path) -> None:
    script = tmp_path / "single.py"
    script.write_text(textwrap.dedent('''
        import pgqueue
        app = pgqueue.App("postgresql://unused")

        @app.task
        def add(a, b):
            return a + b

        @app.task(name="add_named")
        def named(a, b):
            return a + b

        print(add.name, named.name)
    '''))
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "mod.py").write_text(script.read_text())
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=cli_env(None),
                         capture_output=True, text=True, timeout=60)
    assert run.stdout.split() == ["__main__.add", "add_named"], run.stderr
    assert "single.py:5: PgQueueWarning: task 'add' is defined in a script run directly" \
        in run.stderr
    assert "@app.task(name='add')" in run.stderr and "add_named" not in run.stderr
    as_module = subprocess.run([sys.executable, "-m", "pkg.mod"], cwd=tmp_path,
                               env=cli_env(None), capture_output=True, text=True, timeout=60)
    assert as_module.stdout.split() == ["pkg.mod.add", "add_named"], as_module.stderr
    assert "PgQueueWarning" not in as_module.stderr
