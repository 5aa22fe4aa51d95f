#!/bin/sh
# Prepares the lab of student{{ STDID }} on {{ hostvars[inventory_hostname]['IP-WKSHP-Sample201'] }}
echo "lab for student{{ STDID }} ({{ MODEWS }})" > "$HOME/lab-{{ STDID }}.txt"
