from traitor.cli.main import main

raise SystemExit(main())
