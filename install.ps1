<#
.SYNOPSIS
  Install tofu-tui on a Windows test bench with one command.

.DESCRIPTION
  Installs tofu-tui into its own virtual environment under the prefix, puts
  `tofu-tui` on the user's PATH, enrolls the station with the setup token (passed to
  `tofu-tui login` through the TOFU_TUI_TOKEN environment variable, never on the
  command line) and registers the scheduled task that runs `tofu-tui --headless` at
  boot, with nobody logged in. Re-running it upgrades in place; credentials, the
  upload queue and deployments are kept.

  Nothing is half-installed: the new version is built beside the old one
  (PREFIX\venvs\<stamp>) and only switched to (the PREFIX\current junction) once it
  works and the station is enrolled; any failure puts back what was there before.

  Both PowerShell-style (-Token T) and installer-style (--token T) options work:
    & ([scriptblock]::Create((irm <url>/install.ps1))) --token TOKEN --url URL

.PARAMETER Token
  Setup token from the dashboard (or set TOFU_TUI_TOKEN).
.PARAMETER Url
  The dashboard server's URL.
.PARAMETER NoService
  Do not register the scheduled task (run `tofu-tui --headless` yourself).
.PARAMETER From
  Install from a source checkout or a wheel instead of the package index.
.PARAMETER Prefix
  Where the program lives (default %LOCALAPPDATA%\tofu-tui).
.PARAMETER Python
  The Python 3.11+ to use (default: the newest found by the py launcher or on PATH).
#>
[CmdletBinding()]
param(
    [string]$Token = $env:TOFU_TUI_TOKEN,
    [string]$Url = "",
    [switch]$NoService,
    [string]$From = "",
    [string]$Prefix = "",
    [string]$Python = "",
    [switch]$Help,
    [Parameter(ValueFromRemainingArguments = $true)]
    [string[]]$Rest = @()
)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$MinMinor = 11

function Write-Usage {
    @"
Usage: install.ps1 [--token TOKEN] [--url URL] [--no-service] [--from PATH_OR_WHEEL]
                   [--prefix DIR] [--python PYTHON]
  (or -Token, -Url, -NoService, -From, -Prefix, -Python)
Re-run it to upgrade: credentials, queue and deployments are kept.
"@ | Write-Host
}

# A failure the user can act on: one plain message, exit 1 (2 for usage errors).
class InstallError : System.Exception {
    [int]$Code
    InstallError([string]$message, [int]$code) : base($message) { $this.Code = $code }
}
function Fail([string]$Message, [int]$Code = 1) { throw [InstallError]::new($Message, $Code) }

# --- options ------------------------------------------------------------------------
$i = 0
while ($i -lt $Rest.Count) {
    $arg = $Rest[$i]
    $name = $arg; $value = $null
    if ($arg -match '^(--[a-z-]+)=(.*)$') { $name = $Matches[1]; $value = $Matches[2] }
    $takesValue = @('--token', '--url', '--from', '--prefix', '--python') -contains $name
    if ($takesValue -and $null -eq $value) {
        if ($i + 1 -ge $Rest.Count) { Write-Host "install.ps1: $name needs a value."; exit 2 }
        $value = $Rest[$i + 1]; $i++
    }
    switch ($name) {
        '--token' { $Token = $value }
        '--url' { $Url = $value }
        '--from' { $From = $value }
        '--prefix' { $Prefix = $value }
        '--python' { $Python = $value }
        '--no-service' { $NoService = [switch]$true }
        { $_ -in '--help', '-h' } { $Help = [switch]$true }
        default { [Console]::Error.WriteLine("install.ps1: unknown option: $arg"); Write-Usage; exit 2 }
    }
    $i++
}
if ($Help) { Write-Usage; exit 0 }
# The token reaches `tofu-tui login` through the environment only, never argv.
Remove-Item Env:TOFU_TUI_TOKEN -ErrorAction SilentlyContinue

$IsAdmin = ([Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()).IsInRole(
    [Security.Principal.WindowsBuiltInRole]::Administrator)
if (-not $Prefix) { $Prefix = Join-Path $env:LOCALAPPDATA 'tofu-tui' }
$Prefix = [IO.Path]::GetFullPath($Prefix)
$BinDir = Join-Path $Prefix 'bin'

# Run a native program with its output appended to $Log; return its exit code.
# (Windows PowerShell 5.1 turns a native program's stderr into errors, which 'Stop'
# would throw on: relax it for this call only.)
function Invoke-Logged([string]$Exe, [string[]]$ArgList, [string]$Log) {
    $ErrorActionPreference = 'Continue'
    & $Exe @ArgList *>> $Log
    return $LASTEXITCODE
}

# Run a native program, its output shown, and return its exit code.
function Invoke-Native([string]$Exe, [string[]]$ArgList, [switch]$Quiet) {
    $ErrorActionPreference = 'Continue'
    if ($Quiet) { & $Exe @ArgList 2>$null | Out-Null } else { & $Exe @ArgList | Out-Host }
    return $LASTEXITCODE
}

# Run a native program and return its standard output (stderr dropped), or $null on failure.
function Get-NativeOutput([string]$Exe, [string[]]$ArgList) {
    $ErrorActionPreference = 'Continue'
    $out = & $Exe @ArgList 2>$null
    if ($LASTEXITCODE -ne 0) { return $null }
    return (@($out) -join "`n").Trim()
}

function Test-Python([string[]]$Cmd) {
    try {
        $ErrorActionPreference = 'Continue'
        $exe = $Cmd[0]; $pre = @($Cmd | Select-Object -Skip 1)
        $out = & $exe @pre -c "import sys; print(sys.executable) if sys.version_info >= (3, $MinMinor) else sys.exit(1)" 2>$null
        if ($LASTEXITCODE -eq 0 -and $out) { return ([string]$out).Trim() }
    } catch { }
    return $null
}

function Find-Python {
    if ($Python) {
        if (-not (Get-Command $Python -ErrorAction SilentlyContinue)) { Fail "Python not found: $Python does not exist." }
        $found = Test-Python @($Python)
        if (-not $found) { Fail "$Python is not Python 3.$MinMinor or newer, which tofu-tui needs." }
        return $found
    }
    $candidates = @(@('py', '-3.13'), @('py', '-3.12'), @('py', '-3.11'), @('python'), @('python3'))
    foreach ($c in $candidates) {
        if (Get-Command $c[0] -ErrorAction SilentlyContinue) {
            # The Microsoft Store's python.exe stub opens the Store instead of running: Test-Python rejects it.
            $found = Test-Python $c
            if ($found) { return $found }
        }
    }
    Fail ("No Python 3.$MinMinor or newer found; tofu-tui needs one. Install it with " +
        "'winget install Python.Python.3.12' or from https://www.python.org/downloads/windows/ " +
        "(tick 'Add python.exe to PATH'), then re-run, or pass --python PATH.")
}

function Set-Junction([string]$Link, [string]$Target) {
    if (Test-Path -LiteralPath $Link) { [IO.Directory]::Delete($Link) }  # removes the junction, not its target
    New-Item -ItemType Junction -Path $Link -Target $Target | Out-Null
}

$lock = $null; $new = $null; $old = $null; $switched = $false; $prefixExisted = $false; $enrolled = $false
$log = Join-Path ([IO.Path]::GetTempPath()) ("tofu-tui-install-{0}.log" -f [guid]::NewGuid().ToString('N'))
try {
    # --- checks that change nothing ---------------------------------------------------
    $py = Find-Python
    if ((Invoke-Native $py @('-c', 'import venv, ensurepip') -Quiet) -ne 0) { Fail "$py cannot make virtual environments (venv/ensurepip missing): reinstall Python from python.org." }

    $spec = 'tofu-tui'
    if ($From -match '^https?://') { $spec = $From; $From = '' }
    if ($From) {
        if (-not (Test-Path -LiteralPath $From)) { Fail "--from ${From}: no such file or folder." }
        $From = (Resolve-Path -LiteralPath $From).Path
        if (Test-Path -LiteralPath $From -PathType Container) {
            if (-not (Test-Path -LiteralPath (Join-Path $From 'pyproject.toml'))) { Fail "--from ${From}: not a tofu-tui checkout (no pyproject.toml)." }
        } elseif ($From -notlike '*.whl') {
            Fail "--from ${From}: expected a folder (a checkout) or a .whl file."
        }
        $spec = $From
    }
    if (-not $NoService) {
        if (-not (Get-Command schtasks.exe -ErrorAction SilentlyContinue)) { Fail "schtasks.exe not found: re-run with --no-service." }
        if (-not $IsAdmin) {
            Fail "Registering the task that starts tofu-tui at boot needs an elevated PowerShell (Run as Administrator). Re-run there, or pass --no-service."
        }
    }
    if ($Token -and $Url) {
        [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
        try {
            Invoke-WebRequest -UseBasicParsing -Uri ($Url.TrimEnd('/') + '/api/health') -TimeoutSec 15 | Out-Null
        } catch [System.Net.WebException] {
            # An HTTP answer (even 404 from a cloud dashboard) means the server is reachable.
            if ($null -eq $_.Exception.Response) {
                Fail "cannot reach the server at $Url ($($_.Exception.Message)). Check --url and the network, then re-run."
            }
        }
    }

    # --- build the new version beside the old one ------------------------------------
    $prefixExisted = Test-Path -LiteralPath $Prefix
    New-Item -ItemType Directory -Force -Path (Join-Path $Prefix 'venvs') | Out-Null
    $lockPath = Join-Path $Prefix '.install.lock'
    try { $lock = [IO.File]::Open($lockPath, 'OpenOrCreate', 'ReadWrite', 'None') }
    catch { Fail "another install is running in $Prefix." }
    $current = Join-Path $Prefix 'current'
    if (Test-Path -LiteralPath $current) { $old = (Get-Item -LiteralPath $current).Target | Select-Object -First 1 }
    $stamp = '{0}-{1}' -f (Get-Date -Format 'yyyyMMddHHmmss'), $PID
    $new = Join-Path $Prefix "venvs\$stamp"

    Write-Host "Installing tofu-tui with $(Get-NativeOutput $py @('--version')) into $Prefix"
    # uv, when present, installs the same packages several times faster than pip.
    $uv = $null
    if ($env:TOFU_TUI_INSTALLER -ne 'pip') {
        $uv = Get-Command uv.exe -ErrorAction SilentlyContinue | Select-Object -First 1
        $installedUv = Join-Path $Prefix 'current\Scripts\uv.exe'
        # An upgrade: the installed tofu-tui ships uv (it builds procedure environments).
        if (-not $uv -and (Test-Path -LiteralPath $installedUv)) { $uv = Get-Command $installedUv }
    }
    $venvArgs = @('-m', 'venv', $new)
    if ($uv) {
        $venvArgs = @('-m', 'venv', '--without-pip', $new)
        Write-Host "Using uv ($($uv.Source)) to install packages (TOFU_TUI_INSTALLER=pip to use pip and its config)"
        # uv does not read pip's settings: carry over the index a bench was pointed at.
        if ($env:PIP_INDEX_URL -and -not $env:UV_INDEX_URL) { $env:UV_INDEX_URL = $env:PIP_INDEX_URL }
        if ($env:PIP_EXTRA_INDEX_URL -and -not $env:UV_EXTRA_INDEX_URL) { $env:UV_EXTRA_INDEX_URL = $env:PIP_EXTRA_INDEX_URL }
        if ($env:PIP_FIND_LINKS -and -not $env:UV_FIND_LINKS) { $env:UV_FIND_LINKS = $env:PIP_FIND_LINKS }
    }
    if ((Invoke-Logged $py $venvArgs $log) -ne 0) { Fail "could not create a virtual environment in $new. Log: $log" }
    $newPy = Join-Path $new 'Scripts\python.exe'
    $newExe = Join-Path $new 'Scripts\tofu-tui.exe'
    Write-Host "Downloading and installing tofu-tui and its dependencies (log: $log)"
    if ($uv) {
        $installer = $uv.Source
        $pipArgs = @('pip', 'install', '--python', $newPy, $spec)
    } else {
        $installer = $newPy
        $pipArgs = @('-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', $spec)
    }
    if ((Invoke-Logged $installer $pipArgs $log) -ne 0) {
        $text = Get-Content -LiteralPath $log -Raw
        if ($text -match 'NewConnectionError|Failed to establish a new connection|getaddrinfo failed|ConnectTimeout|Read timed out|ProxyError|SSLError|Could not fetch URL|error sending request|dns error|tcp connect error|Failed to fetch') {
            $index = if ($env:PIP_INDEX_URL) { $env:PIP_INDEX_URL } else { 'https://pypi.org/simple' }
            Fail "cannot reach the package index ($index) to download tofu-tui and its dependencies. Check the network or proxy (HTTPS_PROXY), or install --from a wheel. Log: $log"
        }
        if ($text -match 'No matching distribution found|Could not find a version|No solution found') {
            Fail "the package index has no matching tofu-tui (or dependency) for this Python, or cannot be reached. Log: $log"
        }
        Get-Content -LiteralPath $log -Tail 8 | Write-Host
        Fail "could not install tofu-tui (last lines above). Log: $log"
    }
    $version = Get-NativeOutput $newExe @('--version')
    if (-not $version) { Fail "the new tofu-tui does not start. Log: $log" }

    if ($Token) {
        Write-Host 'Enrolling this station'
        $env:TOFU_TUI_TOKEN = $Token
        try {
            $loginArgs = @('login')
            if ($Url) { $loginArgs += @('--url', $Url) }
            $code = Invoke-Native $newExe $loginArgs
        } finally {
            Remove-Item Env:TOFU_TUI_TOKEN -ErrorAction SilentlyContinue
        }
        if ($code -ne 0) { Fail 'enrollment failed (the reason is above). Get a fresh setup token from the dashboard and re-run.' }
        $enrolled = $true
    }

    # --- switch to it -----------------------------------------------------------------
    if (-not $NoService) { Invoke-Native 'schtasks.exe' @('/End', '/TN', 'tofu-tui') -Quiet | Out-Null }
    $switched = $true
    Set-Junction $current $new
    New-Item -ItemType Directory -Force -Path $BinDir | Out-Null
    $shim = Join-Path $BinDir 'tofu-tui.cmd'
    Set-Content -LiteralPath $shim -Encoding ASCII -Value "@echo off`r`n`"%~dp0..\current\Scripts\tofu-tui.exe`" %*"
    $userPath = [Environment]::GetEnvironmentVariable('Path', 'User')
    if (-not $userPath) { $userPath = '' }
    $onPath = ($userPath -split ';') -contains $BinDir

    if (-not $NoService) {
        Write-Host 'Registering the scheduled task'
        $stableExe = Join-Path $current 'Scripts\tofu-tui.exe'
        $code = Invoke-Native $stableExe @('service', 'install', '--executable', $stableExe)
        if ($code -ne 0) { Fail 'the scheduled task could not be registered (the reason is above).' }
    }

    if (-not $onPath) {
        [Environment]::SetEnvironmentVariable('Path', (($userPath.TrimEnd(';') + ';' + $BinDir).TrimStart(';')), 'User')
        $env:Path = "$env:Path;$BinDir"
        Write-Host "Added $BinDir to your PATH (open a new terminal to use it)."
    }
    Get-ChildItem -LiteralPath (Join-Path $Prefix 'venvs') -Directory |
        Where-Object { $_.FullName -ne $new } |
        ForEach-Object { Remove-Item -LiteralPath $_.FullName -Recurse -Force -ErrorAction SilentlyContinue }
    Set-Content -LiteralPath (Join-Path $Prefix '.tofu-tui-install') -Value $shim
    Remove-Item -LiteralPath $log -ErrorAction SilentlyContinue
    $new = $null  # success: nothing to roll back
    Write-Host "Installed $version in $Prefix."
    if ($Token) { Write-Host 'Check the station with: tofu-tui whoami' }
    else { Write-Host 'Enroll the station with: $env:TOFU_TUI_TOKEN = "<setup token>"; tofu-tui login --url <server>' }
    if ($NoService) { Write-Host "The task was not registered; run 'tofu-tui service install' (elevated) or 'tofu-tui --headless'." }
    $exitCode = 0
} catch {
    # Roll back: put the previous version back and remove the half-built one.
    if ($switched) {
        $current = Join-Path $Prefix 'current'
        if ($old) {
            Set-Junction $current $old
            if (-not $NoService) { Invoke-Native 'schtasks.exe' @('/Run', '/TN', 'tofu-tui') -Quiet | Out-Null }
        } elseif (Test-Path -LiteralPath $current) {
            [IO.Directory]::Delete($current)
            Remove-Item -LiteralPath (Join-Path $BinDir 'tofu-tui.cmd') -ErrorAction SilentlyContinue
        }
    }
    if ($new -and (Test-Path -LiteralPath $new)) { Remove-Item -LiteralPath $new -Recurse -Force -ErrorAction SilentlyContinue }
    $ownedPrefix = $lock -and -not $prefixExisted
    if ($lock) { $lock.Close(); $lock = $null }
    if ($ownedPrefix -and (Test-Path -LiteralPath $Prefix)) { Remove-Item -LiteralPath $Prefix -Recurse -Force -ErrorAction SilentlyContinue }
    $exitCode = 1
    $message = $_.Exception.Message
    if ($_.Exception -is [InstallError]) { $exitCode = $_.Exception.Code }
    else { $message = "unexpected error: $message" }
    [Console]::Error.WriteLine("install.ps1: $message")
    [Console]::Error.WriteLine('install.ps1: Nothing was changed: the previous installation (if any) is as it was.')
    if ($enrolled) {
        [Console]::Error.WriteLine('install.ps1: The station did enroll with the new token (its new key is saved); re-run without --token once the cause is fixed.')
    }
} finally {
    if ($lock) { $lock.Close(); Remove-Item -LiteralPath (Join-Path $Prefix '.install.lock') -ErrorAction SilentlyContinue }
}
exit $exitCode
