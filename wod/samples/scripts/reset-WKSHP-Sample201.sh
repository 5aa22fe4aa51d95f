#!/bin/sh
# reset hook of WKSHP-Sample201: records what it was given in the student's home (for demos and tests).
home="${WODSTUDDIR:-/student}/student${stdid}"
[ -d "$home" ] || { echo "no home $home: nothing recorded"; exit 0; }
env | sort | grep -v -e '^randompw=' -e '^accessToken=' > "$home/.wod-hook-reset-WKSHP-Sample201.env"
echo "reset-WKSHP-Sample201 done for student${stdid}"
