"""install.ps1 reviewed against a checklist, one test per item.

PowerShell cannot be installed on this machine (Debian ships no `powershell` package
and neither PyPI nor npm carries the real interpreter), so the script is checked by
reading it: a small tokenizer verifies that brackets balance outside strings and
comments, and each item of the checklist below is asserted on the code (comments and
help text stripped), so removing the construct fails its test. When `pwsh` is on PATH
the script is also parsed by PowerShell itself.

Checklist (Windows PowerShell 5.1+):
 1. a param block with -Token/-Url/-NoService/-From/-Prefix and installer-style
    --token/--url/--no-service/--from/--prefix; unknown options exit 2
 2. `$ErrorActionPreference = 'Stop'` and strict mode before any action
 3. native programs run with their exit code checked (5.1 does not throw on them)
 4. Python >= 3.11 checked, with how to get one (winget, python.org) when missing
 5. the new venv built beside the old one (venvs\\<stamp>), pip run by the new venv's
    Python, never the system's
 6. the token reaches `tofu-tui login` through TOFU_TUI_TOKEN only, removed afterwards
 7. the boot task registered through `tofu-tui service install` (elevation checked
    up front), pointing at the stable `current` junction
 8. rollback on any failure: junction back to the old version, new venv removed
 9. causes named: package index unreachable, server unreachable, enrollment failed
10. `tofu-tui` put on the user's PATH (a .cmd shim in PREFIX\\bin)
11. nothing newer than Windows PowerShell 5.1 (`??`, `?.`, `&&`/`||` chains, ternary,
    `$IsWindows`, `-Parallel`) and ASCII only (5.1 reads BOM-less files as ANSI)
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "install.ps1"
TEXT = SCRIPT.read_text(encoding="utf-8")


def _tokens(text: str) -> tuple[str, list[tuple[str, int]]]:
    """The code with strings and comments blanked, and every bracket with its line."""
    code: list[str] = []
    brackets: list[tuple[str, int]] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if text.startswith("<#", i):
            end = text.index("#>", i) + 2
            line += text.count("\n", i, end)
            code.append("\n" * text.count("\n", i, end))
            i = end
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith(('@"', "@'"), i) and text[i + 2 : i + 3] == "\n":
            quote = text[i + 1]
            end = text.index("\n" + quote + "@", i) + 3
            line += text.count("\n", i, end)
            code.append('""' + "\n" * text.count("\n", i, end))
            i = end
        elif c == "'":
            j = i + 1
            while True:
                j = text.index("'", j)
                if text[j + 1 : j + 2] == "'":
                    j += 2
                    continue
                break
            line += text.count("\n", i, j)
            code.append("''")
            i = j + 1
        elif c == '"':
            j = i + 1
            depth = 0
            while j < n:
                if text[j] == "`":
                    j += 2
                    continue
                if text.startswith("$(", j):
                    depth += 1
                    j += 2
                    continue
                if text[j] == ")" and depth:
                    depth -= 1
                elif text[j] == '"' and not depth:
                    break
                j += 1
            line += text.count("\n", i, j)
            code.append('""')
            i = j + 1
        else:
            if c in "{}()[]":
                brackets.append((c, line))
            if c == "\n":
                line += 1
            code.append(c)
            i += 1
    return "".join(code), brackets


CODE, BRACKETS = _tokens(TEXT)


def _code_lines() -> list[str]:
    return [line.strip() for line in CODE.splitlines() if line.strip()]


def test_brackets_balance_outside_strings_and_comments() -> None:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[tuple[str, int]] = []
    for char, line in BRACKETS:
        if char in "([{":
            stack.append((char, line))
        else:
            assert stack, f"unmatched {char!r} on line {line}"
            opened, opened_line = stack.pop()
            assert opened == pairs[char], f"{char!r} on line {line} closes {opened!r} from line {opened_line}"
    assert not stack, f"unclosed {stack[-1][0]!r} from line {stack[-1][1]}"


def test_parsed_by_powershell_when_available() -> None:
    pwsh = shutil.which("pwsh") or shutil.which("powershell")
    if pwsh is None:
        pytest.skip("PowerShell is not installable here (no Debian package); the checklist tests stand in")
    command = (
        "$e = $null; [void][System.Management.Automation.Language.Parser]::ParseFile("
        f"'{SCRIPT}', [ref]$null, [ref]$e); if ($e) {{ $e | ForEach-Object {{ $_.ToString() }}; exit 1 }}"
    )
    result = subprocess.run([pwsh, "-NoProfile", "-Command", command], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_1_param_block_and_installer_style_options() -> None:
    param = re.search(r"\[CmdletBinding\(\)\]\s*param\((.*?)\n\)", TEXT, re.S)
    assert param, "no param block"
    for name in ("Token", "Url", "NoService", "From", "Prefix", "Python"):
        assert re.search(rf"\${name}\b", param.group(1)), name
    assert "ValueFromRemainingArguments" in param.group(1)
    for flag in ("--token", "--url", "--no-service", "--from", "--prefix"):
        assert f"'{flag}'" in TEXT, flag
    assert re.search(r"unknown option[^\n]*exit 2", TEXT)


def test_2_stop_on_errors_before_any_action() -> None:
    lines = _code_lines()
    stop = lines.index("$ErrorActionPreference = ''")  # the string is blanked in CODE
    assert "$ErrorActionPreference = 'Stop'" in TEXT
    first_action = next(i for i, line in enumerate(lines) if line.startswith(("New-Item", "& ", "Invoke-")))
    assert stop < first_action
    assert re.search(r"^Set-StrictMode -Version", TEXT, re.M)


def test_3_native_exit_codes_are_checked() -> None:
    # Every native call goes through one of three helpers that return $LASTEXITCODE.
    helpers = ("Invoke-Native", "Invoke-Logged", "Get-NativeOutput", "Test-Python")
    outside = CODE
    for helper in helpers:
        outside = re.sub(rf"function {helper}\b.*?\n}}", "", outside, flags=re.S)
    direct_calls = [line.strip() for line in outside.splitlines() if re.search(r"(^|[(=;{|]\s*)& ", line)]
    assert direct_calls == [], direct_calls
    for helper in ("Invoke-Native", "Invoke-Logged", "Get-NativeOutput"):
        body = re.search(rf"function {helper}\b.*?\n}}", TEXT, re.S)
        assert body, helper
        assert "$LASTEXITCODE" in body.group(0)
        assert "$ErrorActionPreference = 'Continue'" in body.group(0)
    for call in re.findall(r"[^\n]*(?:Invoke-Native|Invoke-Logged) [^\n]*", CODE):
        if "-Quiet | Out-Null" in call:
            continue  # best-effort stop/start of the task during rollback
        assert re.search(r"-ne 0|\$code = ", call), call


def test_4_python_version_checked_with_a_way_to_get_one() -> None:
    assert "$MinMinor = 11" in TEXT
    assert "sys.version_info >= (3, $MinMinor)" in TEXT
    assert "'py', '-3.12'" in TEXT
    assert "winget install Python.Python" in TEXT
    assert "python.org" in TEXT
    assert "import venv, ensurepip" in TEXT


def test_5_new_venv_beside_the_old_and_its_own_pip() -> None:
    assert re.search(r"\$new = Join-Path \$Prefix \"venvs\\\$stamp\"", TEXT)
    assert "@('-m', 'venv', $new)" in TEXT
    assert re.search(r"Invoke-Logged \$installer \$pipArgs", TEXT)
    # pip runs as the new venv's Python; uv is pointed at it.
    assert "$installer = $newPy" in TEXT
    assert "@('pip', 'install', '--python', $newPy, $spec)" in TEXT
    assert "'--without-pip', $new" in TEXT
    assert not re.search(r"Invoke-\w+ \$py @\('-m', 'pip'", TEXT), "pip must run in the new venv"


def test_6_token_only_through_the_environment() -> None:
    assert "$env:TOFU_TUI_TOKEN = $Token" in TEXT
    login = re.search(r"\$loginArgs = @\('login'\).*?Invoke-Native \$newExe \$loginArgs", TEXT, re.S)
    assert login and "Token" not in login.group(0).replace("TOFU_TUI_TOKEN", "")
    assert re.search(r"finally \{\s*Remove-Item Env:TOFU_TUI_TOKEN", TEXT)
    assert not re.search(r"Write-\w+[^\n]*\$Token", TEXT), "the token must never be printed"


def test_7_boot_task_through_service_install_with_elevation_check() -> None:
    assert "@('service', 'install', '--executable', $stableExe)" in TEXT
    assert "$stableExe = Join-Path $current 'Scripts\\tofu-tui.exe'" in TEXT
    assert "WindowsBuiltInRole]::Administrator" in TEXT
    check = TEXT.index("if (-not $IsAdmin)")
    assert check < TEXT.index("New-Item -ItemType Directory -Force -Path (Join-Path $Prefix 'venvs')")


def test_8_rollback_on_failure() -> None:
    catch = re.search(r"\n} catch \{\n(.*?)\n} finally \{", TEXT, re.S)
    assert catch, "the main try has no catch"
    body = catch.group(1)
    assert "Set-Junction $current $old" in body
    assert "Remove-Item -LiteralPath $new -Recurse -Force" in body
    assert "Nothing was changed" in body
    assert "$exitCode = 1" in body
    assert TEXT.rstrip().endswith("exit $exitCode")


def test_9_failure_causes_named() -> None:
    assert "cannot reach the package index" in TEXT
    assert "NewConnectionError" in TEXT
    assert "cannot reach the server at $Url" in TEXT
    assert "enrollment failed" in TEXT
    assert "No Python 3.$MinMinor or newer found" in TEXT


def test_10_tofu_tui_on_the_users_path() -> None:
    assert "tofu-tui.cmd" in TEXT
    assert "%~dp0..\\current\\Scripts\\tofu-tui.exe" in TEXT
    assert "[Environment]::SetEnvironmentVariable('Path'" in TEXT
    assert "'User')" in TEXT


def test_11_windows_powershell_5_1_compatible_and_ascii() -> None:
    assert TEXT.isascii(), "non-ASCII characters break Windows PowerShell 5.1 (reads ANSI)"
    for construct in (r"\?\?", r"\?\.", r"&&", r"\|\|", r"\$IsWindows", r"-Parallel", r"\s\?\s.*\s:\s"):
        assert not re.search(construct, CODE), construct
