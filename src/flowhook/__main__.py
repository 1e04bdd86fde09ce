from flowhook.cli import main

raise SystemExit(main())
