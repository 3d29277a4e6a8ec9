"""tongke recorder and course-example library."""
