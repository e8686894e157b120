from tofu_tui.cli import main

main()
