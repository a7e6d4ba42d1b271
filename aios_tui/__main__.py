from aios_tui.cli import main

raise SystemExit(main())
