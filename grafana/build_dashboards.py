"""Write the pipeline's Grafana dashboards: ``heartbeat_dashboards.build`` run as a script.

python grafana/build_dashboards.py           write the dashboards (and the chart's copies)
python grafana/build_dashboards.py --check   exit 1 if a committed file is out of date
"""

import sys

from heartbeat_dashboards.build import main

if __name__ == "__main__":
    sys.exit(main())
