"""The course-example library (示范课例库): catalogue rows, queries and workflow rules."""
